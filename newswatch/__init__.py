"""newswatch: watches 天天要聞 for new articles on US–Russia talks and announces each one."""

__version__ = "0.1.0"
