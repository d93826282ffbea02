-- Ledger reads that do not grow with the size of the whole ledger (issue 4,
-- performance). The only index on an account's entries was (account_id): a
-- caller's ledger page (newest first) walked the primary key backwards over
-- every tenant's entries until it found 50 of its own, about 250 ms for a small
-- tenant in a ledger of two million entries, and the invoice preview summed
-- the whole history of the account to find the opening balance of the month.
-- This index replaces it (one index per entry either way, so the usage path
-- writes no more than before): it still serves the sums over an account
-- (index-only, the amount is included), and it gives a page and a month of an
-- account's entries as one range scan.
CREATE INDEX ledger_entries_account_time ON ledger_entries (account_id, created_at, id) INCLUDE (amount_micros);
DROP INDEX ledger_entries_account;
