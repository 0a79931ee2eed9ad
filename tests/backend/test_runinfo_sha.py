"""run_meta's git sha: from the checkout, or from SSM_ARENA_GIT_SHA where the tree travelled without .git."""

from backend import runinfo


def test_env_sha_wins_when_set(monkeypatch):
    runinfo.git_sha.cache_clear()
    monkeypatch.setenv("SSM_ARENA_GIT_SHA", "abc1234")
    try:
        assert runinfo.run_meta("cpu")["git_sha"] == "abc1234"
    finally:
        runinfo.git_sha.cache_clear()


def test_sha_from_checkout(monkeypatch):
    runinfo.git_sha.cache_clear()
    monkeypatch.delenv("SSM_ARENA_GIT_SHA", raising=False)
    try:
        sha = runinfo.git_sha()
        if (runinfo.REPO_ROOT / ".git").exists():  # CI and developers run from a clone
            assert sha is not None and len(sha) == 40 and all(c in "0123456789abcdef" for c in sha)
        else:
            assert sha is None
    finally:
        runinfo.git_sha.cache_clear()
