"""The executor contract (cadenza.testing.executors) on every executor: inline, threads and
processes."""

from __future__ import annotations

from cadenza.executors import Executor, InlineExecutor, ThreadExecutor
from cadenza.executors.processes import ProcessExecutor
from cadenza.testing.executors import ExecutorContract


class TestInlineExecutor(ExecutorContract):
    def make_executor(self) -> Executor:
        return InlineExecutor()


class TestThreadExecutor(ExecutorContract):
    def make_executor(self) -> Executor:
        return ThreadExecutor(max_workers=4)


class TestProcessExecutor(ExecutorContract):
    def make_executor(self) -> Executor:
        return ProcessExecutor(max_workers=2)
