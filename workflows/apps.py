from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"

    def ready(self) -> None:
        from communications.signals import event_published
        from jobs.runtime.context import register_parent_results
        from jobs.signals import jobs_finished
        from workflows.services.automations import start_matching_automations
        from workflows.services.running import parent_results, step_jobs_finished

        # Neither jobs nor communications knows workflows: they hear the engine and the
        # events through these signals, and a step's body reads its parents' results here.
        jobs_finished.connect(step_jobs_finished, dispatch_uid="workflows.step_jobs_finished")
        event_published.connect(start_matching_automations, dispatch_uid="workflows.automations")
        register_parent_results(parent_results)
