# ruff: noqa: RUF012 - migration
"""Dataset versions: family, version, parent, operation. Existing rows become roots."""

import django.db.models.deletion
from django.db import migrations, models


def existing_rows_are_roots(apps, schema_editor):
    Dataset = apps.get_model("datasets", "Dataset")
    for dataset in Dataset.objects.all().only("id", "name", "source"):
        op = "generate" if dataset.source == "generated" else "upload"
        Dataset.objects.filter(pk=dataset.pk).update(
            family=dataset.name, version=1, operation={"op": op, "params": {}}
        )


class Migration(migrations.Migration):
    dependencies = [("datasets", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="dataset",
            name="family",
            field=models.CharField(
                db_index=True, default="", help_text="The root dataset's name.", max_length=128
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="dataset",
            name="version",
            field=models.PositiveIntegerField(default=1),
        ),
        migrations.AddField(
            model_name="dataset",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="children",
                to="datasets.dataset",
            ),
        ),
        migrations.AddField(
            model_name="dataset",
            name="operation",
            field=models.JSONField(blank=True, default=dict, help_text='{"op", "params"} that made it.'),
        ),
        migrations.RunPython(existing_rows_are_roots, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="dataset",
            constraint=models.UniqueConstraint(
                fields=("family", "version"), name="dataset_unique_version_per_family"
            ),
        ),
    ]
