"""Running a class: the exchange, the report, LMS export, similarity, the students'
config. May import grading/, authoring/, kernel/ and the package's root modules."""
