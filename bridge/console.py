"""The console e-mail backend for development (EMAIL_URL=consolemail://): Django's prints
the whole MIME message, so every invoice e-mail put its PDF into the log as base64. This one
prints the headers and text parts, and each attachment as its name, type and size. Named
like Django's (…console.EmailBackend), so the deploy check knows it sends nothing."""

from email.message import Message
from typing import Any

from django.core.mail import EmailMessage
from django.core.mail.backends import console

HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID")


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return payload.decode(part.get_content_charset() or "utf-8", errors="replace")


def summary(message: EmailMessage) -> str:
    """The message as a person reads it, attachments by name only."""
    mime = message.message()
    lines = [f"{name}: {mime[name]}" for name in HEADERS if mime[name] is not None]
    for part in mime.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        if filename or part.get_content_disposition() == "attachment":
            payload: Any = part.get_payload(decode=True) or b""
            lines.append(
                f"[attachment: {filename or 'unnamed'}, {part.get_content_type()}, "
                f"{len(payload)} bytes]"
            )
        elif part.get_content_maintype() == "text":
            lines += ["", _text(part).rstrip("\n")]
        else:
            lines.append(f"[part: {part.get_content_type()}]")
    return "\n".join(lines)


class EmailBackend(console.EmailBackend):
    def write_message(self, message: EmailMessage) -> None:  # type: ignore[override]
        self.stream.write(f"{summary(message)}\n{'-' * 79}\n")
