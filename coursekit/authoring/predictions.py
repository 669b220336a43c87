"""The notebook's predictions: what each asks, the choices, and what a class predicted.

Before each run that reveals something, the student records a guess in a small cell
(``prediction_plain = "doubles"``). The guesses earn no points and are never marked
wrong: after the run the notebook prints the guess beside the measurement
(``udl_bn_checks.recall``). For the instructor, ``python -m coursekit.classroom.report`` draws how
the class predicted each one (``predictions.png``): a small concept inventory.

PREDICTIONS is the one home of the questions. ``coursekit.authoring.sync`` writes each prediction
cell of the source notebook from it (the release gets the cell with an empty guess), and
the report reads the class's guesses back with it, from the submitted text (student code
is never run for this).
"""
import ast
import json
from dataclasses import dataclass

# What the report calls a guess that is none of the choices, and a cell left empty.
OWN_WORDS = "own words"
NONE = "no prediction"
# Cells longer than this are not read for guesses (a submission is student-made input).
MAX_CELL_CHARACTERS = 20_000


@dataclass(frozen=True)
class Prediction:
    name: str           # the variable the student assigns; also the cell's grade_id
    question: str       # the cell's first comment line
    choices: tuple      # what the class picks from, in the order shown
    measured: str       # the choice the notebook's own run shows (the report marks it)

    def cell_source(self, guess=""):
        # Wrapped between choices, never inside one.
        words = ["One of"] + [json.dumps(c) + "," for c in self.choices] + ["or your own words."]
        choices = [""]
        for word in words:
            if choices[-1] and len(choices[-1]) + 1 + len(word) > 86:
                choices.append("")
            choices[-1] = (choices[-1] + " " + word).strip()
        return "\n".join(["# Your prediction: %s" % self.question]
                         + ["# " + line for line in choices]
                         + ["# It earns no points and is never marked wrong: run the next "
                            "cell to see.",
                            "%s = %s" % (self.name, json.dumps(guess))])

    def classify(self, guess):
        """The choice a guess names, OWN_WORDS, or NONE."""
        words = " ".join(str(guess or "").lower().replace('"', " ").split())
        if not words:
            return NONE
        for choice in self.choices:
            if words == choice.lower():
                return choice
        return OWN_WORDS


PREDICTIONS = (
    Prediction("prediction_plain",
               "from one residual connection to the next, the plain network's variance",
               ("grows by a fixed factor", "grows by a fixed amount", "stays the same",
                "shrinks"),
               "grows by a fixed factor"),
    Prediction("prediction_batchnorm",
               "with batch norm, from one residual connection to the next, the variance",
               ("grows by a fixed factor", "grows by a fixed amount", "stays the same",
                "shrinks"),
               "grows by a fixed amount"),
    Prediction("prediction_log_batchnorm",
               "on the logarithmic axis, the batch-norm network's curve is",
               ("a straight line", "bending upward", "bending over", "flat"),
               "bending over"),
    Prediction("prediction_slope",
               "one network's measured slope and your derivation differ by",
               ("nothing", "less than 1%", "1% to 10%", "more than 10%"),
               "1% to 10%"),
    Prediction("prediction_rescaled",
               "from block to block, the rescaled network's variance",
               ("stays exactly the same", "grows slowly", "shrinks slowly"),
               "shrinks slowly"),
    Prediction("prediction_log_rescaled",
               "on the logarithmic axis, the rescaled network's curve is",
               ("a falling straight line", "flat", "bending over", "rising"),
               "a falling straight line"),
    Prediction("prediction_training",
               "at the larger learning rate, which networks still train",
               ("both", "the plain network", "the batch-norm network", "neither"),
               "the batch-norm network"),
    Prediction("prediction_train_vs_eval",
               "after training, in train mode and in eval mode the outputs are",
               ("the same", "different"),
               "different"),
    Prediction("prediction_created_in_forward",
               "model.eval() makes the BatchNorm1d created inside forward",
               ("normalize with running statistics", "still normalize with the batch's own",
                "raise an error at once"),
               "still normalize with the batch's own"),
)
BY_NAME = {prediction.name: prediction for prediction in PREDICTIONS}


def recorded(notebook):
    """{prediction name: the guess} of a notebook, read from its text: the last string
    each name is assigned in any code cell (cells that do not parse are skipped)."""
    guesses = {}
    for cell in notebook.cells:
        source = cell.get("source")
        if cell.get("cell_type") != "code" or not isinstance(source, str):
            continue
        if len(source) > MAX_CELL_CHARACTERS:  # no guess is that long; parsing could be slow
            continue
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id in BY_NAME:
                        guesses[target.id] = node.value.value
    return guesses


def tally(notebooks):
    """{prediction name: {choice, OWN_WORDS or NONE: how many students}} in the order
    the chart shows them."""
    counts = {p.name: dict.fromkeys(p.choices + (OWN_WORDS, NONE), 0) for p in PREDICTIONS}
    for notebook in notebooks:
        guesses = recorded(notebook)
        for prediction in PREDICTIONS:
            counts[prediction.name][prediction.classify(guesses.get(prediction.name))] += 1
    return counts
