from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("airlock_outbox", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="outboxrow", name="context", field=models.TextField(blank=True, null=True)
        ),
        migrations.CreateModel(
            name="OutboxKey",
            fields=[
                ("ordering_key", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("writes", models.BigIntegerField(default=0)),
            ],
            options={"db_table": "airlock_outbox_keys", "verbose_name": "outbox ordering key"},
        ),
    ]
