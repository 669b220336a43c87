"""What runs in the student's kernel: the checks' rows, their observers and their judges
(shipped as udl_bn_helpers.py). Imports nothing else of coursekit, but the answer key
(authoring.reference) where checks.py runs outside a notebook."""
