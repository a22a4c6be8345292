"""The Markdown block extractor the example tests rely on."""

from __future__ import annotations

from pathlib import Path

from tests.docs.markdown_blocks import blocks

PAGE = """# Title

```python
a = 1
```

* a list item with an indented example:

    ```python
    b = a + 1
    ```

<!-- docs-test: skip (needs a GPU) -->
```python
import nothing_here
```

<!-- docs-test: fresh-process (sets an environment variable) -->
~~~py
c = 3
~~~

```bash
perfrdiff --help
```
"""


def test_blocks_languages_lines_and_marks(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    found = blocks(page)
    assert [b.language for b in found] == ["python", "python", "python", "py", "bash"]
    assert [b.line for b in found] == [3, 9, 14, 19, 23]
    assert found[1].code == "b = a + 1\n"  # dedented out of the list item
    assert [b.skipped for b in found] == [False, False, True, False, False]
    assert [b.fresh_process for b in found] == [False, False, False, True, False]
