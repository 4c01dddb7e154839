-- Fencing: the lease's generation goes up each time another owner takes the run. A write made
-- under a lease (a checkpoint, the run's end) carries the owner and generation it was granted and
-- is refused once they changed.

ALTER TABLE runs ADD COLUMN lease_generation INTEGER NOT NULL DEFAULT 0;
