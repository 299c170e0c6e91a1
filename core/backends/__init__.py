"""Model backends behind one interface (:mod:`core.backends.base`), looked up by name in a
registry (:mod:`core.backends.builtin`)."""
