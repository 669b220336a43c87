"""The grading pipeline: nbgrader's steps, the sandbox, intake, the judge's round trip,
feedback and Validate. May import kernel/, authoring/ and the package's root modules."""
