"""Source of refquant's framework adapters: ``adapters/paddle`` is ``refquant.adapters.paddle``
(this marker file is not shipped; ``refquant/adapters/__init__.py`` is the package).
"""
