"""The run loop: render → plan → schedule → execute → persist. Read ``loop.py`` first."""
