"""Where work runs: in a child process, so a crash, hang or out-of-memory kill never takes tk down.

The package, by concept::

    process     a forked child that behaves as ``python SCRIPT`` would (ForkedProcess), and what every
                child shares: signals, stack dumps, the held standard fds, the tail of a log
    isolated    one piece of work in a child under a time limit (run_isolated, IsolatedOutcome), and
                where it runs (choose_start_method: fork, spawn or inline)
    streaming   a child that streams messages while it works (StreamingChild), and how it ended
                (ChildEnded)
    leftovers   what a script leaves when it ends: its atexit handlers (run as python runs them) and
                the processes it started (ended, so they cannot hold up the run)
    memory      the cap on each child's resident memory (--memory-limit): a watch that kills a child
                over it, whose outcome is then out_of_memory

See each module's docstring; the names below are the package's public API.
"""

from turnkey_like.launcher.isolated import (
    IsolatedOutcome,
    StartMethod,
    choose_start_method,
    default_start_method,
    run_isolated,
)
from turnkey_like.launcher.leftovers import end_leftover_processes, run_exit_handlers, script_ended
from turnkey_like.launcher.memory import (
    MemoryWatch,
    default_memory_limit,
    limit_children_memory,
    memory_backend,
    parse_memory_size,
)
from turnkey_like.launcher.process import (
    ERROR_LIMIT,
    LOG_EXCERPT_LINES,
    ForkedProcess,
    die_with_parent,
    hold_standard_fds,
    log_tail,
    signals_as_under_python,
)
from turnkey_like.launcher.streaming import TK_BUG_HINT, ChildEnded, StreamingChild, main_thread_forks_clean

__all__ = ["IsolatedOutcome", "StartMethod", "choose_start_method", "default_start_method", "run_isolated",
           "ERROR_LIMIT", "LOG_EXCERPT_LINES", "ForkedProcess", "die_with_parent", "hold_standard_fds", "log_tail",
           "signals_as_under_python", "TK_BUG_HINT", "ChildEnded", "StreamingChild", "main_thread_forks_clean",
           "end_leftover_processes", "run_exit_handlers", "script_ended", "MemoryWatch", "default_memory_limit",
           "limit_children_memory", "memory_backend", "parse_memory_size"]
