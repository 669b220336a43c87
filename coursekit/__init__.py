"""The course's tooling, one package per role (kernel, authoring, grading, classroom,
examples; docs/architecture.md); here, what they all share (course, escape, record)."""
