"""The help screen (? or F1)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# explorer: keys

| key | does |
|---|---|
| 1 - 6 | show a screen: sets, analogy, neighbours, lens, experiments, SQL (when no text box has focus) |
| F2 - F7 | the same, from anywhere |
| Tab / Shift+Tab | move between fields |
| Enter | search (neighbours), select a row (vector sets: browse its tokens), run (lens prompt) |
| Ctrl+R | run the SQL in the editor |
| Ctrl+Up / Ctrl+Down | SQL history |
| ? / F1 | this help; Escape closes it |
| Ctrl+Q | quit |

**Analogy** answers as you type; a slower answer that arrives after you typed on is dropped.
Toggles: model, vector set (input embedding or unembedding), 3CosAdd / 3CosMul, input exclusion.
The diagnostics are the CLI's: is the analogy's offset parallel at all (offset cosine)?

**Neighbours**: token mode shows the input and output sets side by side, plus per-layer token
means for the layers you list (needs `explorer export-states`); hidden-state mode runs your text
through the model and searches the stored states of each layer. The **centre** switch scores
both after subtracting each layer's mean state over the corpus (as `--center` does): raw cosine
between hidden states is dominated by one shared direction.

**Lens** runs a language-attribution task (recorded like `explorer lens`), or a prompt's
layer x top-token grid. The lens toggle (beside the prompt) reads every layer with the
**logit lens** or the model's **tuned lens** (learned by `explorer lens train`, as `--lens tuned`);
without a stored one, choosing it says how to train one. **Experiments** runs a sweep in a separate process: Cancel keeps the
finished points. **SQL** is read-only, like `explorer sql`.
"""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark,f1", "app.pop_screen", "Close")]
    DEFAULT_CSS = "HelpScreen { align: center middle; } HelpScreen > VerticalScroll { width: 90; height: 80%; border: round $accent; background: $surface; }"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(HELP)
