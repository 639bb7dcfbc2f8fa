from django.db import migrations, models


def join_reasons(apps, schema_editor):
    """One field says why a draft is held: an invoice with both reasons keeps both."""
    Invoice = apps.get_model("usage", "Invoice")
    for invoice in Invoice.objects.exclude(review_reason="").only("hold_reason", "review_reason"):
        reasons = [r for r in (invoice.hold_reason, invoice.review_reason) if r]
        invoice.hold_reason = "; ".join(reasons)[:1000]
        invoice.save(update_fields=["hold_reason"])


def split_reasons(apps, schema_editor):
    """Back to two fields: a fallback reason (it names observed usage) goes back."""
    Invoice = apps.get_model("usage", "Invoice")
    marker = "Built from observed usage"
    for invoice in Invoice.objects.filter(hold_reason__contains=marker):
        before, _, after = invoice.hold_reason.partition(marker)
        invoice.hold_reason = before.removesuffix("; ")
        invoice.review_reason = (marker + after)[:500]
        invoice.save(update_fields=["hold_reason", "review_reason"])


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0012_reminders"),
        ("users", "0006_customer_invoice_details"),
    ]

    operations = [
        migrations.AlterField(
            model_name="invoice",
            name="hold_reason",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                help_text="Why the close did not issue this draft: usage it cannot price, or "
                "usage from a fallback source (observed usage because SolusIO's /usage was "
                "unusable); several reasons are joined with '; '.",
                max_length=1000,
            ),
        ),
        migrations.RunPython(join_reasons, split_reasons),
        migrations.RemoveField(
            model_name="invoice",
            name="review_reason",
        ),
        # The USAGE_SOURCE=both gap list names paid backups one source alone saw, too.
        migrations.RemoveConstraint(
            model_name="usagesourcegap",
            name="usage_source_gap_once",
        ),
        migrations.AddField(
            model_name="usagesourcegap",
            name="item",
            field=models.CharField(
                default="server",
                help_text="What one source alone saw: the server, or its paid backups.",
                max_length=64,
            ),
        ),
        migrations.AddConstraint(
            model_name="usagesourcegap",
            constraint=models.UniqueConstraint(
                fields=("period", "server_id", "item"), name="usage_source_gap_once"
            ),
        ),
    ]
