from django.db import migrations


def create_counter(apps, schema_editor):
    # Created here, not on first use, so two first issues cannot race to insert it.
    apps.get_model("usage", "InvoiceCounter").objects.get_or_create(name="invoice")


class Migration(migrations.Migration):
    dependencies = [("usage", "0001_initial")]

    operations = [migrations.RunPython(create_counter, migrations.RunPython.noop)]
