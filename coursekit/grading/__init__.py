"""The grading pipeline: nbgrader's steps, the sandbox, intake, the judge's round trip,
feedback and Validate; everything it changes inside nbgrader is in nbgrader_compat.py.
May import kernel/, authoring/ and the package's root modules."""
