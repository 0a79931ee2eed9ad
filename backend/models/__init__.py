"""Which models exist and how they load.

    registry.py      built-in entries (bundled trio, Hugging Face ids), user-added local folders, availability
    loading.py       a registry entry -> an HFGenerator on a device (our fast SSM path where it applies)
    manager.py       ModelManager: each model loaded once per process, thread-safe (UI and CLI)
    placeholders.py  untrained stand-ins for the bundled trio until trained folders exist; tiny test models
    fake.py          a fake Generator with the real interface (SSM_ARENA_FAKE=1, UI tests): no torch
"""
