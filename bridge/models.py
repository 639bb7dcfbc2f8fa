"""Abstract bases the apps' models share, and the staff API's keys."""

from datetime import datetime
from typing import Any, Self

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.text import capfirst

# How many of a key's first characters are kept in clear, to tell keys apart.
PREFIX_LENGTH = 8


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"  # gave up after its MAX_ATTEMPTS setting; staff may re-send
    SKIPPED = "skipped", "Skipped"  # no longer wanted: paid or voided before it went out


class Delivery(models.Model):
    """An e-mail in an outbox (bridge.outbox): written in the transaction that decides it,
    sent by a task after commit, retried with backoff, re-sent by the sweep when the broker
    lost the message, and kept as the record of what went where. Each table adds what the
    mail is about, and a check constraint on `state` in its own name."""

    state = models.CharField(
        max_length=8, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    recipient = models.CharField(max_length=254, blank=True, help_text="Where it was sent.")
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class SingletonModel(models.Model):
    """A table of staff settings that holds exactly one row, id 1. `load()` reads it (and
    makes it with the defaults the first time); the constraint is the last line of defence
    against a second row."""

    SINGLETON_PK = 1

    class Meta:
        abstract = True
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="%(class)s_singleton"),
        ]

    def __str__(self) -> str:
        return capfirst(str(self._meta.verbose_name))

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.pk = self.SINGLETON_PK
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> Self:
        obj, _ = cls._default_manager.get_or_create(pk=cls.SINGLETON_PK)
        return obj


class ApiKey(models.Model):
    """A staff API key (`Authorization: Token <key>`). Only a digest of the key is stored:
    the key itself is shown once, when it is made; afterwards its first characters tell
    keys apart."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(
        max_length=100, blank=True, help_text="What uses the key, e.g. 'invoice export script'."
    )
    prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: the key works until it is revoked."
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… {self.name}".rstrip()

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"
