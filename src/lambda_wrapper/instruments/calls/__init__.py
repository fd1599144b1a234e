"""Spans for the function's downstream calls: AWS SDK (botocore) and HTTP clients.

``start`` only watches the imports: a library is patched right after the function
imports the module we patch (at once if it is already imported), so an
instrumentation whose library is never used imports nothing. ``patches`` holds one
function per library that wraps the library's call and records one span per call
through ``spans``; a patch that fails switches that instrumentation off with one line.

The watching (``PostImportHook``) runs a callback right after a watched module is
imported, whoever imports it. A finder at the front of ``sys.meta_path`` answers only
for the watched names: it asks the finders behind it for the real spec and wraps its
loader so that, once the module's code has run, the module's own loader is put back
and the callback runs. A module that is already imported gets its callback at once.
Nothing else is imported until then, so a watched library that the function never
imports costs one dict lookup per import.
"""

from __future__ import annotations

import sys

from ...settings import emit

TYPE_CHECKING = False  # typing costs ~4 ms to import: keep it off the cold path
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    from ...telemetry import TelemetryEvent

# instrumentation -> (the module whose import triggers the patch, its function in ``patches``)
PATCHES = {
    "botocore": ("botocore.client", "patch_botocore"),
    "urllib3": ("urllib3.connectionpool", "patch_urllib3"),
    "requests": ("requests.sessions", "patch_requests"),
    "http.client": ("http.client", "patch_http_client"),
}


def start(
    instrumentations: tuple[str, ...], submit: Callable[[TelemetryEvent], None], propagate: bool
) -> PostImportHook | None:
    """Patch each named library once the function imports it; spans go to ``submit``, the
    export pipeline's entry for the toolkit's own records (``Pipeline.submit``)."""
    state: dict[str, object] = {}

    def activate(name: str) -> Callable[[], None]:
        def patch_now() -> None:
            try:
                from . import patches
                from .spans import Recorder

                recorder = state.get("recorder")
                if recorder is None:
                    recorder = state["recorder"] = Recorder(submit, propagate)
                getattr(patches, PATCHES[name][1])(recorder)
            except Exception as exc:
                emit(
                    "warning", "instrument_failed",
                    f"the {name} instrumentation could not patch its library and is off: {exc!r}",
                    feature=f"the {name} instrumentation",
                )

        return patch_now

    return watch({PATCHES[name][0]: activate(name) for name in instrumentations if name in PATCHES})


class PostImportHook:
    def __init__(self, watched: dict[str, Callable[[], None]]) -> None:
        self._watched = dict(watched)  # module name -> callback, removed once it ran

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self._watched:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is not None and hasattr(loader, "exec_module"):
            spec.loader = _CallbackLoader(loader, self, fullname)
        return spec

    def loaded(self, fullname: str) -> None:
        callback = self._watched.pop(fullname, None)
        if not self._watched:
            remove(self)
        if callback is not None:
            callback()


class _CallbackLoader:
    """The module's own loader, plus the callback once the module's code ran."""

    def __init__(self, loader: object, hook: PostImportHook, fullname: str) -> None:
        self._loader = loader
        self._hook = hook
        self._fullname = fullname

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        if spec is not None:
            spec.loader = self._loader  # type: ignore[assignment]
        module.__loader__ = self._loader  # type: ignore[assignment]
        self._loader.exec_module(module)  # type: ignore[attr-defined]
        self._hook.loaded(self._fullname)

    def __getattr__(self, name: str) -> object:
        return getattr(self._loader, name)


def watch(watched: dict[str, Callable[[], None]]) -> PostImportHook | None:
    """Call each callback after its module is imported (now, for one already imported)."""
    pending = {}
    for name, callback in watched.items():
        if name in sys.modules:
            callback()
        else:
            pending[name] = callback
    if not pending:
        return None
    hook = PostImportHook(pending)
    sys.meta_path.insert(0, hook)
    return hook


def remove(hook: PostImportHook) -> None:
    try:
        sys.meta_path.remove(hook)
    except ValueError:
        pass
