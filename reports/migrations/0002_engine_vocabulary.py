"""Reports speak the engine's words: `started` and `succeeded`."""

from django.db import migrations, models


RENAMES = [("running", "started"), ("ready", "succeeded")]


def forwards(apps, schema_editor):
    for old, new in RENAMES:
        apps.get_model("reports", "Report").objects.filter(status=old).update(status=new)


def backwards(apps, schema_editor):
    for old, new in RENAMES:
        apps.get_model("reports", "Report").objects.filter(status=new).update(status=old)


class Migration(migrations.Migration):

    dependencies = [
        ('reports', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='report',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('started', 'Started'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('canceled', 'Canceled')], default='pending', max_length=10),
        ),
        migrations.RunPython(forwards, backwards),
    ]
