-- 0006_unbuffer: the Buffer tables of 0005_buffers go; sync_runs, license_counts and
-- usage_counts are written and read straight again (docs/schema.md, "Buffers, and why they
-- went"). A read through a Buffer table is not atomic: ClickHouse takes the destination's
-- parts when the query starts and reads the buffer when its stream runs, so a flush between
-- the two hides the rows it moves from that read. A row whose write had returned could vanish
-- from a read and come back in the next (3 reads in 3,138 during 20 s of 200 INSERTs a second
-- into a buffer flushed every second, on 18.16; a users sync's snapshot missing from
-- GET .../trends in CI).
--
-- Dropping a Buffer table writes what it holds to its destination first. The collectors
-- older than this migration write into the buffers: stop them before it runs (a write of
-- theirs into a dropped buffer fails).
DROP TABLE IF EXISTS {db}.sync_runs_buffer;
DROP TABLE IF EXISTS {db}.license_counts_buffer;
DROP TABLE IF EXISTS {db}.usage_counts_buffer;
