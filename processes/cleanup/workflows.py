"""One sweep: every table in turn, batch after batch, until a batch comes back short."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from processes.cleanup.vocabulary import (
    LATER_TABLES,
    CleanupReport,
    CleanupRequest,
    SweepBatch,
    SweptTable,
)

with workflow.unsafe.imports_passed_through():
    from processes.cleanup.activities import CleanupActivities
    from temporal.retry_policies import DB_RETRY


@workflow.defn
class CleanupWorkflow:
    """Started by the `cleanup/expired-rows` schedule; a sweep that overlaps the next is skipped."""

    @workflow.run
    async def run(self, request: CleanupRequest) -> CleanupReport:
        report = CleanupReport()
        for table in SweptTable:
            if table in LATER_TABLES and not workflow.patched(LATER_TABLES[table]):
                continue
            report.deleted[table] = await self.sweep(table, request)
        return report

    async def sweep(self, table: SweptTable, request: CleanupRequest) -> int:
        deleted = 0
        for _ in range(request.max_batches_per_table):
            swept = await workflow.execute_activity_method(
                CleanupActivities.delete_expired_batch,
                SweepBatch(table=table, batch=request.batch, grace_days=request.grace_days),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=DB_RETRY,
                summary=f"sweep {table}",
            )
            deleted += swept.deleted
            if swept.deleted < request.batch:
                break
        return deleted
