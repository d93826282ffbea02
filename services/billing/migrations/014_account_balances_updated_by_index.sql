-- Balances of a ledger statement's accounts found through the primary key
-- (issue 4, performance). The ledger's statement trigger adds each new
-- entry's amount to its account's balance with one UPDATE ... FROM over the
-- statement's entries. Its plan is chosen from the number of entries in the
-- transition table: for a usage chunk of a few events on a table of 1,000
-- tenants the planner chose a hash join over a sequential scan of all of
-- accounts, which it costs as 64 pages. Those pages hold many versions of each
-- row (every Reserve and every chunk rewrites its tenant's row; fillfactor 50
-- keeps the versions on the page, migration 013), and the scan took 8-20 ms,
-- while the chunk held its accounts' locks (auto_explain under a steady flow
-- of usage, bench/results/billing.md). A probe by id per changed account is the right plan at every size: a chunk
-- changes at most a few thousand accounts, and the table grows with tenants.
ALTER FUNCTION ledger_entries_apply_to_balances() SET enable_seqscan = off;
ALTER FUNCTION ledger_entries_apply_to_balances() SET enable_hashjoin = off;
ALTER FUNCTION ledger_entries_apply_to_balances() SET enable_mergejoin = off;
