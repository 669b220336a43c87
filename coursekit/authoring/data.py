"""MNIST-1D for grading: built once, in `source/bn/`, and given to every graded notebook.

nbgrader copies every non-notebook file of `source/bn/` into each student's autograded
folder (and into the release), so the notebook's `get_dataset(..., path='./mnist1d_data.pkl')`
loads this file instead of building the data set again: about a third of the cost of
grading one notebook. The data are the same either way (mnist1d builds them from a fixed
seed); the pickle is never committed. `python -m coursekit.authoring.data` (make builds it).
"""
import sys

from coursekit.course import ASSIGNMENT, ROOT

DATA_FILE = ROOT / "source" / ASSIGNMENT / "mnist1d_data.pkl"


def build(path=DATA_FILE):
    import mnist1d

    # The very call the notebook makes, so the file is what the notebook would build.
    mnist1d.data.get_dataset(mnist1d.data.get_dataset_args(), path=str(path),
                             download=False, regenerate=False)
    return path


if __name__ == "__main__":
    print("built", build().relative_to(ROOT))
    sys.exit(0)
