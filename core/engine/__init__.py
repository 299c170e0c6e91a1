"""The hybrid inference engine: routing a task to a model, running it, the ledger of receipts."""
