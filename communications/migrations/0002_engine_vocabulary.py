"""Workload rows speak the engine's words; the campaign's start kind is named launch."""

from django.db import migrations, models


# (model, field, old → new), applied in this order: a delivery's old `failed` (will retry)
# becomes `retrying` before its old `dead` becomes `failed`.
RENAMES = [
    ("WebhookDelivery", "status", "delivering", "started"),
    ("WebhookDelivery", "status", "failed", "retrying"),
    ("WebhookDelivery", "status", "dead", "failed"),
    ("WebhookAttempt", "outcome", "retry", "retrying"),
    ("WebhookAttempt", "outcome", "dead", "failed"),
    ("ContactImport", "status", "running", "started"),
    ("ContactExport", "status", "running", "started"),
]
KINDS = [("communications.start_campaign", "communications.launch_campaign")]


def _rename_values(apps, renames):
    for model, field, old, new in renames:
        apps.get_model("communications", model).objects.filter(**{field: old}).update(**{field: new})


def _rename_kinds(apps, kinds):
    for model in ("Job", "Schedule", "JobHourlyStat"):
        rows = apps.get_model("jobs", model).objects
        for old, new in kinds:
            rows.filter(kind=old).update(kind=new)


def forwards(apps, schema_editor):
    _rename_values(apps, RENAMES)
    _rename_kinds(apps, KINDS)


def backwards(apps, schema_editor):
    _rename_values(apps, [(m, f, new, old) for m, f, old, new in reversed(RENAMES)])
    _rename_kinds(apps, [(new, old) for old, new in KINDS])


class Migration(migrations.Migration):

    dependencies = [
        ('communications', '0001_initial'),
        ('jobs', '0006_lean_indexes'),
    ]

    operations = [
        migrations.AlterField(
            model_name='contactexport',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('started', 'Started'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('canceled', 'Canceled')], default='pending', max_length=10),
        ),
        migrations.AlterField(
            model_name='contactimport',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('started', 'Started'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('canceled', 'Canceled')], default='pending', max_length=10),
        ),
        migrations.AlterField(
            model_name='webhookattempt',
            name='outcome',
            field=models.CharField(choices=[('succeeded', 'Succeeded'), ('retrying', 'Failed, retry scheduled'), ('failed', 'Failed, no retry')], max_length=10),
        ),
        migrations.AlterField(
            model_name='webhookdelivery',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('started', 'Delivering'), ('retrying', 'Retrying'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('canceled', 'Canceled')], default='pending', max_length=10),
        ),
        migrations.RunPython(forwards, backwards),
    ]
