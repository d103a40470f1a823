"""Varied sentences per language for the teacher, from word lists (no downloads).

English words are chosen to cover every phone class often, with many
bilabials and rounded/spread vowel contrasts; Japanese is written in kana
(what espeak-ng reads); Mandarin in tone-numbered pinyin.
"""

from __future__ import annotations

import numpy as np

EN_WORDS = """
bob bought a map maybe baby bubble people pepper poppy mom moon movie mumble amber about above mobile apple
table number simple problem example impossible temple campus jump bump lamp stamp thumb climb lamb
father five vivid very fun off view favor leave of fifty coffee
think thought thin bath with this that there other mother brother breathe
time ten today little letter middle night nine tonight doll tall delta
sister six seven zero zoo zone music easy class pass
shoe she sure shine wash fish measure vision church cheese chair judge jump joy
red right rain around sorry bird word her early car more
key cake go good bag king sing long ring hello happy ahead
we way window wood away one water queen
yes yellow you young beyond
father palm hot rock cat hat bad black back apple cup bus love up
out house now how about mouse loud cow ice my time like night fly
oh go show boat road phone old toe low know ball call saw law
eat see me feet tree green please keep it is sit give him busy
day say make take rain wait name
blue two food school moon soon you true book put look foot good could
about around over under open again
the and a to in is was for on with as at by from
""".split()

JA_WORDS = """
あい あお うえ いえ おい あおい いう かお こえ そら うみ やま かわ はな はは ちち まま ぱぱ
ばあ びい ぶう べえ ぼう まめ もも みみ むし めがね ほん ぶんか ぼうし ばんごう みんな
さくら すし せかい そうじ たなか ちかてつ つくえ てがみ ともだち なまえ にほん ぬの ねこ のみもの
ひかり ふね へや ほし まち みず むら めし もり やすみ ゆき よる らいねん りんご るす れきし ろうか わたし
がっこう きって ざっし まっすぐ いっぱい ほっぺ ぱん ぽすと ぴあの ぷーる ぺん
おはよう こんにちは こんばんは ありがとう すみません さようなら おいしい たのしい うれしい
あさ ひる ばん きょう あした きのう いま ここ そこ あそこ どこ なに だれ いつ
おおきい ちいさい あたらしい ふるい たかい やすい ながい みじかい
""".split()

ZH_SYLLABLES = """
ba1 ba4 ba5 bai2 bao3 bei3 ben3 bi3 bing1 bu4 pa4 pao3 peng2 pi2 piao4 pu3 ma1 ma3 mai3 man4 mao1 mei2 men5 mi3
mian4 ming2 mu4 fa1 fan4 fang1 fei1 fen1 feng1 fu4 da4 dao4 de5 di4 dian4 dong1 du2 ta1 tai4 tian1 tong2 tu2
na3 ni3 nian2 nv3 la1 lai2 lao3 le5 li3 liang3 lu4 lv4 ga1 gao1 ge4 gong1 gu3 guo2 ka3 kai1 kan4 ke3 kou3 kuai4
ha1 hai2 hao3 he2 hen3 hong2 hua1 huo3 ji1 jia1 jian4 jiao4 jin1 jing1 jiu3 qi1 qian2 qing3 qu4 xi1 xia4 xiang3
xiao3 xie4 xin1 xue2 zhe4 zhi1 zhong1 zhu4 chi1 chu1 chuan2 shi4 shang4 shao3 shen2 shou3 shui3 shuo1 ri4 ren2
rou4 zai4 zao3 zi4 zuo4 ca1 cai4 cong2 si4 san1 song4 suo3 wo3 wai4 wan3 wang4 wei4 wen4 wu3 ya1 yang2 yao4 ye3
yi1 yin1 ying1 you3 yu2 yuan2 yue4 yun2 a1 ai4 an1 e4 er2 ou1
""".split()

LANGS = ("en", "ja", "zh")


def sentence(lang: str, rng: np.random.Generator) -> str:
    """One random sentence of 4-14 words (or 6-20 syllables) with commas for pauses."""
    if lang == "en":
        words = list(rng.choice(EN_WORDS, size=int(rng.integers(4, 14))))
        sep = " "
    elif lang == "ja":
        words = list(rng.choice(JA_WORDS, size=int(rng.integers(3, 9))))
        sep = " "
    elif lang == "zh":
        words = list(rng.choice(ZH_SYLLABLES, size=int(rng.integers(6, 20))))
        sep = " "
    else:
        raise ValueError(f"unknown language {lang!r}; use en, ja or zh")
    out = []
    for i, w in enumerate(words):
        out.append(w)
        if 0 < i < len(words) - 1 and rng.random() < 0.15:
            out[-1] += "、" if lang == "ja" else ","
    end = rng.choice(["。", "？"]) if lang == "ja" else rng.choice([".", "?", "!"])
    return sep.join(out) + end
