"""Getting results out exactly once: the outbox of write-backs and the replies of answer-now-or-later."""
