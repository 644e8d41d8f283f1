"""The default worker keeps RQ's own records, so RQ's tools see its jobs as RQ would show them."""

from rq import Queue
from rq import Worker as RQWorker
from rq.job import Job as RQJob
from rq.registry import FinishedJobRegistry, StartedJobRegistry

from jobs.models import Job
from jobs.runtime.worker import FastWorker
from jobs.services.jobs import enqueue_job, enqueue_jobs
from jobs.transport import queueing
from tests.jobs.conftest import status_of, wait_for


def test_jobs_enqueued_in_bulk_are_rq_jobs_like_those_rq_enqueues_itself(tenant):
    jobs = enqueue_jobs(tenant=tenant, kind="jobs.noop", payloads=[{}] * 60)
    redis = queueing.connection()
    queue = queueing.get_rq_queue("default")
    own = queue.enqueue_many(
        [Queue.prepare_data(queueing.EXECUTE, **queueing._rq_options(jobs[0]) | {"job_id": "own"})]
    )[0]

    ours = RQJob.fetch(jobs[7].rq_id, connection=redis)
    theirs = RQJob.fetch(own.id, connection=redis)

    assert (ours.func_name, ours.args[1:], ours.kwargs) == (theirs.func_name, theirs.args[1:], {})
    same = ("origin", "description", "timeout", "result_ttl", "failure_ttl", "ttl", "meta")
    assert {name: getattr(ours, name) for name in same} == {
        name: getattr(theirs, name) for name in same
    }
    assert ours.get_status() == theirs.get_status() == "queued"
    assert set(redis.hkeys(ours.key)) <= set(redis.hkeys(theirs.key))
    assert queue.count == 61
    assert Job.objects.filter(status=Job.Status.QUEUED).count() == 60


def test_a_job_the_default_worker_ran_is_finished_in_rq_and_counted_for_the_worker(tenant):
    job = enqueue_job(tenant=tenant, kind="jobs.noop", payload={})
    redis = queueing.connection()
    worker = FastWorker(["default"], connection=redis)

    worker.work(burst=True)

    rq_job = RQJob.fetch(job.rq_id, connection=redis)
    assert rq_job.get_status() == "finished"
    assert rq_job.started_at is not None
    assert rq_job.ended_at is not None
    assert job.rq_id in FinishedJobRegistry("default", connection=redis).get_job_ids()
    assert StartedJobRegistry("default", connection=redis).get_job_ids() == []
    stats = RQWorker.find_by_key(worker.key, connection=redis)
    assert stats is not None
    assert stats.successful_job_count == 1
    assert status_of(job) == Job.Status.SUCCEEDED


def test_a_running_job_is_in_rq_started_registry_and_its_worker_busy_with_it(
    tenant, worker_process
):
    job = enqueue_job(tenant=tenant, kind="jobs.sleep", payload={"seconds": 3})
    worker_process("default")
    wait_for(lambda: status_of(job) == Job.Status.STARTED)
    redis = queueing.connection()

    running = StartedJobRegistry("default", connection=redis).get_job_ids()
    (worker,) = RQWorker.all(connection=redis)

    assert running == [job.rq_id]
    assert worker.get_state() == "busy"
    assert worker.get_current_job_id() == job.rq_id
    assert RQJob.fetch(job.rq_id, connection=redis).get_status() == "started"
    wait_for(lambda: status_of(job) == Job.Status.SUCCEEDED, timeout=20)
    wait_for(lambda: StartedJobRegistry("default", connection=redis).get_job_ids() == [])
