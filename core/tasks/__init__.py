"""What Baton is asked to write: task kinds, their prompts and the guards that check the answer."""
