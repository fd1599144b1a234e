"""The in-process supervisor: what runs inside the function's runtime process.

``entry`` is the handler Lambda calls (the wrapper points ``_HANDLER`` at it); it
loads the user's handler with the runtime's own error semantics, starts the
extension and wraps every invocation.
"""
