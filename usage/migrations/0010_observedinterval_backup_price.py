from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0009_billingsettings_einvoice_pdf"),
    ]

    operations = [
        migrations.AddField(
            model_name="observedinterval",
            name="backup_price",
            field=models.DecimalField(
                blank=True,
                decimal_places=4,
                help_text="Percent (rule R7).",
                max_digits=9,
                null=True,
            ),
        ),
    ]
