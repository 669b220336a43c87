"""nbgrader preprocessors the course adds to ``generate_assignment``."""
from nbgrader.preprocessors import NbGraderPreprocessor

RELEASE_SOURCE_KEY = "release_source"


class ReleaseStub(NbGraderPreprocessor):
    """Give a solution cell a runnable starting point instead of nbgrader's stub.

    nbgrader replaces a whole solution cell with ``raise NotImplementedError()``. The
    batch-norm TODO should instead open, as in the original notebook, on the plain
    network's code for students to adapt. A cell carrying that text in its metadata under
    ``udl.release_source`` gets it in the release; the metadata itself is removed.
    Runs right after ClearSolutions, before checksums are computed.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        course_metadata = cell.metadata.get("udl", {})
        if RELEASE_SOURCE_KEY in course_metadata:
            cell.source = course_metadata.pop(RELEASE_SOURCE_KEY)
            if not course_metadata:
                del cell.metadata["udl"]
        return cell, resources
