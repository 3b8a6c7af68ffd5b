"""Believable Chinese names and Shanghai addresses for a simulated fleet (pure, seeded).

The demo shows households, residents and caregivers to people who read Chinese first; "Home 7" and
"Resident 7" make a board look like test data. Names here are drawn from common surnames and from
given names typical of people born in the 1930s-1950s (the residents) and of the volunteers and
committee staff who look after them. Everything is a function of ``(seed, index)``: the same fleet gets
the same names on every run. Nothing here is anyone's real name-and-address pair; the lanes are real
street names of Changning district, the numbers are drawn.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# The most common surnames (in rough order of frequency).
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾萧田"
    "董潘袁蔡蒋余于杜叶程魏苏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白"
)
# Given names common for women and men born 1930-1955.
ELDER_GIVEN = (
    "秀英", "桂英", "秀兰", "玉兰", "桂兰", "凤英", "玉珍", "秀珍", "素珍", "美华",
    "建国", "国强", "志明", "德明", "福根", "阿根", "金宝", "永康", "国华", "宝林",
)  # fmt: skip
YOUNGER_GIVEN = (
    "敏", "静", "丽", "燕", "芳", "娟", "霞", "晓红", "海燕", "春梅",
    "伟", "强", "磊", "军", "勇", "杰", "涛", "建华", "志刚", "海峰",
)  # fmt: skip
STREETS = ("华阳路", "江苏路", "愚园路", "长宁路", "安化路", "定西路", "延安西路", "武夷路", "番禺路", "新华路")


@dataclass(frozen=True, slots=True)
class ChineseNames:
    """Names for home ``index`` of a fleet and for its care team (see the module docstring)."""

    seed: int = 0

    def _rng(self, what: str, index: int) -> random.Random:
        return random.Random(f"{self.seed}:{what}:{index}")

    def resident(self, index: int) -> str:
        rng = self._rng("resident", index)
        return rng.choice(SURNAMES[:60]) + rng.choice(ELDER_GIVEN)

    def household(self, index: int) -> str:
        """An address-like name, as the committee's ledger lists homes: lane, number, flat."""
        rng = self._rng("household", index)
        lane, number = rng.randrange(10, 1200), rng.randrange(1, 40)
        flat = rng.randrange(1, 7) * 100 + rng.randrange(1, 5)
        return f"{rng.choice(STREETS)}{lane}弄{number}号{flat}室"

    def volunteer(self, number: int) -> str:
        rng = self._rng("volunteer", number)
        return f"老伙伴志愿者 {rng.choice(SURNAMES[:60])}{rng.choice(YOUNGER_GIVEN)}"

    def committee_desk(self, committee: str = "") -> str:
        return f"{committee or '居委会'}值班台"

    def supervisor(self) -> str:
        rng = self._rng("supervisor", 0)
        return f"街道社区服务中心 {rng.choice(SURNAMES[:30])}{rng.choice(YOUNGER_GIVEN)}"
