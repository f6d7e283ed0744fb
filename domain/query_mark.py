"""The words a worker's refused query carries (workers/query_guard.py), which the doors' client recognises and
asks again on (incidentflow/query_retry.py). Here, below both, so the doors' light commands load no worker code."""

QUERY_RETRY_MARK = "query arrived with events no workflow task has processed yet; ask again"
