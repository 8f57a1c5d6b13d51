"""Pure domain core: columnar readings, plant model, GB 18218 grading and vectorised alarm rules.

Nothing here does I/O: numpy and pydantic only, so every rule is testable as a plain function.
"""
