"""Request and response examples of the staff API's documentation (/api/v1/docs/), one set
per serializer, attached with drf-spectacular's extend_schema_serializer here rather than
in each app so the examples read as one story: Jane Doe in London, paying in GBP.
bridge.api_schema imports this module, so the schema always has them."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema_serializer

from payments.serializers import (
    PaymentSerializer,
    RecordPaymentSerializer,
    RefundSerializer,
    ReminderSerializer,
)
from pricing.serializers import (
    CurrencySerializer,
    DiscountSerializer,
    PlanSerializer,
    PricingSettingsSerializer,
    TaxRuleSerializer,
    TokenPricingAnswerSerializer,
)
from usage.serializers import (
    BillingSettingsSerializer,
    CloseRunDetailSerializer,
    CloseRunSerializer,
    CorrectionSerializer,
    CreditNoteDetailSerializer,
    CreditNoteSerializer,
    CreditReasonSerializer,
    DunningEventSerializer,
    InvoiceDetailSerializer,
    InvoiceSerializer,
    UpcomingInvoiceSerializer,
    UsageRecordSerializer,
)
from users.serializers import CountSerializer, CustomerSerializer, SyncRecordSerializer

GBP = {
    "code": "GBP",
    "token_price": "0.0007900000",
    "display_prefix": "£",
    "display_suffix": "",
    "decimals": 2,
    "thousands_separator": ",",
    "decimals_separator": ".",
}
DISCOUNT = {
    "id": 1,
    "name": "Loyalty",
    "description": "5 % off for customers of more than a year",
    "multiplier": "0.950000",
    "valid_from": "2026-01-01T00:00:00Z",
    "valid_until": None,
}
TAX_RULE = {
    "id": 1,
    "label": "City Tax",
    "rate": "6.0000",
    "country": "GB",
    "region": "London",
    "order": 1,
}
PLAN = {
    "id": 1,
    "name": "1 Core, 1 GB RAM",
    "tokens_per_hour": 7,
    "tokens_per_month": 5000,
    "aggregated_tokens_per_month": 5208,
    "suggested_tokens_per_month": 5000,
}
CUSTOMER = {
    "id": 1,
    "email": "jane@example.co.uk",
    "name": "Jane Doe",
    "currency": "GBP",
    "country": "GB",
    "region": "London",
    "billing_exempt": False,
    "status": "active",
    "discounts": [1],
    "limit_group": None,
    "company_name": "Doe Consulting Ltd",
    "billing_address": "1 Example Street\nLondon SW1A 1AA",
    "vat_id": "GB123456789",
    "tax_exemption_reason": "",
    "language": "en",
    "solusio_user_id": 12,
    "sync_state": "synced",
    "sync_error": "",
    "created_at": "2026-09-01T09:30:00Z",
    "updated_at": "2026-11-02T14:05:12Z",
}
SELLER_SETTINGS = {
    "seller_name": "Example Hosting Ltd",
    "seller_address": "2 Data Centre Road\nManchester M1 1AA\nUnited Kingdom",
    "seller_vat_id": "GB987654321",
    "seller_registration": "Registered in England and Wales, no. 01234567",
    "support_email": "billing@example-hosting.co.uk",
    "payment_instructions": "Bank transfer to IBAN GB33BUKB20201555555555, BIC BUKBGB22",
    "payment_link_template": "",
    "payment_terms_days": 14,
    "logo_path": "",
    "invoice_footer": "Thank you for your business.",
}
BILLING_SETTINGS = {
    "auto_issue": True,
    "dunning_days": 14,
    "reminder_days": "-3, 1, 7",
    "email_invoices": True,
    "auto_collect": False,
    **SELLER_SETTINGS,
}
INVOICE = {
    "id": 7,
    "display_number": "INV-000007",
    "number": 7,
    "payment_reference": "RF09000000007",
    "customer": 1,
    "period": "2026-10",
    "period_start": "2026-10-01T00:00:00Z",
    "period_end": "2026-11-01T00:00:00Z",
    "status": "issued",
    "currency": "GBP",
    "tokens": 5000,
    "subtotal": "3.7525",
    "tax_total": "0.3002",
    "total": "4.0527",
    "paid": "1.0000",
    "balance": "3.0527",
    "discrepancies": 0,
    "hold_reason": "",
    "generated_at": "2026-11-01T01:00:04Z",
    "issued_at": "2026-11-01T01:00:05Z",
    "paid_at": None,
    "voided_at": None,
}
INVOICE_LINE = {
    "position": 1,
    "server_id": 31,
    "server_uuid": "5b0e2c1a-8d6f-4f0e-9a57-0c3e8f4b2d11",
    "server_name": "web-1",
    "plan_id": 1,
    "plan_name": "1 Core, 1 GB RAM",
    "item": "server",
    "started_at": "2026-10-01T00:00:00Z",
    "ended_at": "2026-11-01T00:00:00Z",
    "hours": 744,
    "tokens_per_hour": 7,
    "tokens_per_month": 5000,
    "rule": "monthly_cap",
    "tokens": 5000,
    "amount": "3.7525",
    "reported_tokens": 5000,
    "discrepancy": False,
}
LEGAL: dict[str, Any] = {
    "seller": {
        "name": SELLER_SETTINGS["seller_name"],
        "address": SELLER_SETTINGS["seller_address"],
        "vat_id": SELLER_SETTINGS["seller_vat_id"],
        "registration": SELLER_SETTINGS["seller_registration"],
        "support_email": SELLER_SETTINGS["support_email"],
        "payment_instructions": SELLER_SETTINGS["payment_instructions"],
        "payment_link_template": "",
        "payment_terms_days": 14,
        "logo_path": "",
        "footer": SELLER_SETTINGS["invoice_footer"],
    },
    "customer": {
        "id": 1,
        "email": "jane@example.co.uk",
        "name": "Jane Doe",
        "company_name": "Doe Consulting Ltd",
        "address": "1 Example Street\nLondon SW1A 1AA",
        "country": "GB",
        "vat_id": "GB123456789",
        "tax_exemption_reason": "",
    },
    "issue_date": "2026-11-01",
    "due_date": "2026-11-15",
}
INVOICE_DETAIL = {
    **INVOICE,
    "taxes": [
        {"label": "City Tax", "rate": "6", "base": "3.7525", "amount": "0.2252"},
        {"label": "State Tax", "rate": "2", "base": "3.7525", "amount": "0.0750"},
    ],
    "snapshot": {
        "currency": dict(GBP),
        "discounts": [{"name": "Loyalty", "multiplier": "0.950000"}],
        "taxes": {
            "compound": False,
            "rates": [{"label": "City Tax", "rate": "6"}, {"label": "State Tax", "rate": "2"}],
        },
        "billing_exempt": False,
    },
    "legal": LEGAL,
    "lines": [INVOICE_LINE],
    "email": {
        "state": "sent",
        "attempts": 1,
        "last_error": "",
        "recipient": "jane@example.co.uk",
        "sent_at": "2026-11-01T01:00:09Z",
        "next_attempt_at": None,
    },
}
CREDIT_NOTE = {
    "id": 1,
    "display_number": "CN-000001",
    "number": 1,
    "invoice": 7,
    "invoice_number": "INV-000007",
    "customer": 1,
    "kind": "void",
    "reason": "Billed twice for web-1",
    "issued_at": "2026-11-20T09:30:00Z",
    "currency": "GBP",
    "tokens": -5000,
    "subtotal": "-3.7525",
    "tax_total": "-0.3002",
    "total": "-4.0527",
}
CREDIT_NOTE_DETAIL = {
    **CREDIT_NOTE,
    "taxes": [
        {"label": "City Tax", "rate": "6", "base": "-3.7525", "amount": "-0.2252"},
        {"label": "State Tax", "rate": "2", "base": "-3.7525", "amount": "-0.0750"},
    ],
    "lines": [
        {
            **{k: v for k, v in INVOICE_LINE.items() if k not in ("server_uuid", "plan_id")},
            "tokens": -5000,
            "amount": "-3.7525",
        }
    ],
    "legal": {**LEGAL, "issue_date": "2026-11-20", "due_date": None},
    "email": {
        "state": "sent",
        "attempts": 1,
        "last_error": "",
        "recipient": "jane@example.co.uk",
        "sent_at": "2026-11-20T09:30:04Z",
        "next_attempt_at": None,
    },
}
UPCOMING = {
    "customer": 1,
    "period": "2026-11",
    "period_start": "2026-11-01T00:00:00Z",
    "upto": "2026-11-29T12:00:00Z",
    "currency": "GBP",
    "tokens": 4872,
    "subtotal": "3.6566",
    "tax_total": "0.2925",
    "total": "3.9491",
    "lines": [
        {
            "server_id": 31,
            "server_name": "web-1",
            "item": "server",
            "plan_name": "1 Core, 1 GB RAM",
            "hours": 696,
            "tokens_per_hour": 7,
            "tokens_per_month": 5000,
            "rule": "Hourly",
            "tokens": 4872,
            "amount": "3.6566",
        }
    ],
}
USAGE_RECORD = {
    "id": 120,
    "period": "2026-10-01",
    "customer": 1,
    "billing_user_id": 1,
    "orphan": False,
    "solusio_user_id": 12,
    "server_id": 31,
    "server_uuid": "5b0e2c1a-8d6f-4f0e-9a57-0c3e8f4b2d11",
    "server_name": "web-1",
    "item": "server",
    "plan_id": 1,
    "plan_name": "1 Core, 1 GB RAM",
    "unknown_kind": False,
    "hours": 744,
    "tokens_per_hour": 7,
    "tokens_per_month": 5000,
    "backup_price": "10.0000",
    "reported_tokens": 5000,
    "started_at": "2026-10-01T00:00:00Z",
    "ended_at": "2026-11-01T00:00:00Z",
}
SYNC_RECORD = {
    "id": 41,
    "customer_id": 1,
    "action": "upsert",
    "payload": {"email": "jane@example.co.uk", "billing_user_id": 1, "status": "active"},
    "reason": "edited in admin",
    "state": "done",
    "attempts": 1,
    "next_attempt_at": None,
    "last_error": "",
    "created_at": "2026-11-02T14:05:12Z",
    "delivered_at": "2026-11-02T14:05:13Z",
}
DUNNING_EVENT = {
    "id": 3,
    "customer": 1,
    "invoice": 7,
    "action": "suspended",
    "reason": "INV-000007 unpaid 14 days after issue",
    "at": "2026-11-15T01:00:00Z",
}
PAYMENT = {
    "id": 12,
    "customer": 1,
    "amount": "1.0000",
    "currency": "GBP",
    "method": "bank_transfer",
    "reference": "RF18000000000000000007",
    "received_at": "2026-11-10T00:00:00Z",
    "credit_note": None,
    "note": "",
    "created_at": "2026-11-10T08:12:40Z",
    "allocations": [
        {
            "invoice": 7,
            "invoice_number": "INV-000007",
            "amount": "1.0000",
            "allocated_at": "2026-11-10T00:00:00Z",
        }
    ],
    "unallocated": "0.0000",
}
RECORD_PAYMENT = {
    "customer": 1,
    "amount": "1.00",
    "currency": "GBP",
    "method": "bank_transfer",
    "reference": "RF18000000000000000007",
    "received_at": "2026-11-10T00:00:00Z",
    "invoice": 7,
    "note": "",
}
REFUND = {
    "credit_note": 1,
    "amount": "4.0527",
    "method": "bank_transfer",
    "reference": "REFUND-CN-000001",
    "received_at": "2026-11-21T10:00:00Z",
    "note": "Paid back to Jane's account",
}
REMINDER = {
    "id": 4,
    "customer": 1,
    "invoice": 7,
    "invoice_number": "INV-000007",
    "number": 2,
    "days": 1,
    "due_date": "2026-11-15",
    "state": "sent",
    "attempts": 1,
    "last_error": "",
    "recipient": "jane@example.co.uk",
    "created_at": "2026-11-16T00:37:00Z",
    "next_attempt_at": None,
    "sent_at": "2026-11-16T00:37:02Z",
}
CLOSE_RUN = {
    "id": 12,
    "period": "2026-10",
    "customer": None,
    "pull": True,
    "auto_issue": True,
    "inline": False,
    "state": "building",
    "source": "usage_api",
    "fallback_reason": "",
    "started_at": "2026-11-01T00:07:02Z",
    "finished_at": None,
    "progress": 52,
    "rows": 1000420,
    "orphans": 9815,
    "customers": 198000,
    "built": 98000,
    "pull_shards": 412,
    "pull_shards_done": 412,
    "shards_total": 99,
    "shards_done": 49,
    "created": 0,
    "updated": 0,
    "unchanged": 0,
    "frozen": 0,
    "removed": 0,
    "issued": 0,
    "held": 0,
    "error": "",
    "seconds": {"pull": 61.2},
}
CLOSE_SHARD = {
    "stage": "build",
    "index": 49,
    "part": "customers 98001–100000",
    "first_customer": 98001,
    "last_customer": 100000,
    "customers": 2000,
    "first_part": None,
    "last_part": None,
    "state": "running",
    "attempts": 2,
    "worker": "worker-2:17",
    "started_at": "2026-11-01T00:09:40Z",
    "finished_at": None,
    "rows": 0,
    "orphans": 0,
    "built": 1500,
    "created": 0,
    "updated": 0,
    "unchanged": 0,
    "frozen": 0,
    "error": "OperationalError: server closed the connection unexpectedly",
}
TOKEN_PRICING = {
    "base_token_unit_cost": "0.00079",
    "user_token_unit_cost": "0.0008114406",
    "currency": {k: v for k, v in GBP.items() if k != "token_price"},
    "discounts": [
        {
            "name": "Loyalty",
            "description": "5 % off for customers of more than a year",
            "multipler": "0.95",
        }
    ],
    "taxes": {
        "compound": True,
        "rates": [{"label": "City Tax", "rate": "6"}, {"label": "State Tax", "rate": "2"}],
    },
}


def _writable(data: dict[str, Any], *read_only: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in read_only}


def _examples(
    serializer: Any,
    name: str,
    response: dict[str, Any],
    request: dict[str, Any] | None = None,
    summary: str = "",
) -> None:
    """One response example and, for writable serializers, one request example."""
    examples = [
        OpenApiExample(
            name,
            value=response,
            response_only=True,
            summary=summary,
            status_codes=["200", "201", "202"],  # 202: the queued resync and retry
        )
    ]
    if request is not None:
        examples.append(
            OpenApiExample(f"{name} (request)", value=request, request_only=True, summary=summary)
        )
    extend_schema_serializer(examples=examples)(serializer)


_examples(
    CurrencySerializer,
    "Pound sterling",
    GBP,
    GBP,
    summary="1 token = £0.00079; amounts shown as £1,234.56",
)
_examples(DiscountSerializer, "Loyalty discount", DISCOUNT, _writable(DISCOUNT, "id"), "5 % off")
_examples(
    TaxRuleSerializer, "London city tax", TAX_RULE, _writable(TAX_RULE, "id"), "6 % in London"
)
_examples(
    PlanSerializer,
    "Smallest plan",
    PLAN,
    _writable(PLAN, "aggregated_tokens_per_month", "suggested_tokens_per_month"),
    summary="7 tokens an hour, capped at 5,000 a month",
)
_examples(
    PricingSettingsSerializer,
    "Compounding taxes",
    {"taxes_compound": True},
    {"taxes_compound": True},
    summary="Each tax is charged on the amount including the taxes before it",
)
_examples(
    CustomerSerializer,
    "A customer in London",
    CUSTOMER,
    _writable(CUSTOMER, "solusio_user_id", "sync_state", "sync_error", "created_at", "updated_at"),
    summary="Paying in GBP with the loyalty discount, delivered to SolusIO",
)
_examples(CountSerializer, "Queued", {"count": 1}, summary="How many it applied to")
_examples(SyncRecordSerializer, "A delivered change", SYNC_RECORD)
_examples(TokenPricingAnswerSerializer, "Jane's token price", TOKEN_PRICING)
_examples(InvoiceSerializer, "An issued invoice", INVOICE, summary="October 2026")
_examples(InvoiceDetailSerializer, "An issued invoice", INVOICE_DETAIL, summary="With its lines")
_examples(CreditNoteSerializer, "A void's credit note", CREDIT_NOTE, summary="INV-000007 voided")
_examples(
    CreditNoteDetailSerializer, "A void's credit note", CREDIT_NOTE_DETAIL, summary="With its lines"
)
_examples(
    CreditReasonSerializer,
    "Why",
    {"reason": "Billed twice for web-1"},
    {"reason": "Billed twice for web-1"},
    summary="Printed on the credit note",
)
_examples(
    CorrectionSerializer,
    "A correction",
    {
        "credit_note": {**CREDIT_NOTE_DETAIL, "kind": "correction"},
        "invoice": {
            **INVOICE_DETAIL,
            "id": 8,
            "status": "draft",
            "number": None,
            "payment_reference": "",
        },
    },
    summary="The credit note and the new draft",
)
_examples(UpcomingInvoiceSerializer, "November so far", UPCOMING, summary="Nothing stored")
_examples(UsageRecordSerializer, "A month of one server", USAGE_RECORD)
_examples(
    BillingSettingsSerializer,
    "Issue and e-mail automatically",
    BILLING_SETTINGS,
    BILLING_SETTINGS,
    summary="The seller's details go on every invoice issued from now on",
)
_examples(DunningEventSerializer, "A suspension", DUNNING_EVENT)
_examples(
    PaymentSerializer,
    "A bank transfer",
    PAYMENT,
    summary="Part of INV-000007 paid; recorded once per method and reference",
)
_examples(
    RecordPaymentSerializer,
    "A bank transfer",
    RECORD_PAYMENT,
    RECORD_PAYMENT,
    summary="Settles INV-000007 first, then the oldest open invoices; the rest is credit",
)
_examples(
    RefundSerializer,
    "Refund a voided invoice's payment",
    REFUND,
    REFUND,
    summary="At most the customer's credit and what the credit note has left",
)
_examples(
    ReminderSerializer,
    "The second reminder",
    REMINDER,
    summary="One day after the due date; INV-000007 still partly unpaid",
)
_examples(CloseRunSerializer, "October, half built", CLOSE_RUN, summary="On two workers")
_examples(
    CloseRunDetailSerializer,
    "October, with a shard on its second attempt",
    {**CLOSE_RUN, "shards": [CLOSE_SHARD]},
    summary="Each shard's range, worker and last error",
)
