"""The example class (its answers, `make samples`, `make new-class`), the benchmark and the
README's pictures. May import any other part of the package."""
