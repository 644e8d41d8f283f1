from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"

    def ready(self) -> None:
        from alerts.services.incidents import on_health_checked
        from jobs.signals import health_checked

        # jobs knows nothing of alerts: every stored health check reaches the rules this way.
        health_checked.connect(on_health_checked, dispatch_uid="alerts.evaluate_rules")
