"""bulkops: run Wix account-level bulk operations from a job file, exactly once, checkpointed."""

__version__ = "0.1.0"
