-- Room on every page of accounts for the next version of its rows (issue 4,
-- performance). An account row is rewritten by every Reserve (its open holds)
-- and by every usage chunk that charges its tenant (balance and holds). With
-- full pages (fillfactor 100) almost none of those updates could stay on the
-- row's page: in a benchmark at 100,000 tenants, 2,369 of 300,300 updates were
-- HOT, so each of the others also inserted into the table's three indexes and
-- left a dead version for vacuum. With half of each page free, the new version
-- is written next to the old one and the indexes are not touched. Pages written
-- before this migration keep their layout until their rows move.
ALTER TABLE accounts SET (fillfactor = 50);
