-- The deadline of the caller waiting for the current segment (CreateRun/ResumeRun with wait and a
-- gRPC deadline): the segment stops when it passes. NULL: no deadline.
ALTER TABLE runs ADD COLUMN segment_deadline timestamptz;
