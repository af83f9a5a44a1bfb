"""A small, synthetic, competition-shaped folder so every command can run with no downloads.

The rows are made up and say so. A prompt is a template-subject pair in one of six languages; the
winner is a helpful on-topic answer, the loser one of several kinds of bad answer, longer or shorter,
so length alone is far from perfect. Each pair is train or test by a hash of its text, so the demo's
score is never measured on rows (or prompts) the model has seen; ``make_demo_competition`` checks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from arena_core.data.errors import DataError
from arena_core.data.sources import find_leakage

SYNTHETIC_NOTE = "SYNTHETIC demo data made by arena_core.data.synthetic: not real human preferences"

_LANG_WEIGHTS = {
    "English": 0.45,
    "Spanish": 0.15,
    "Chinese": 0.15,
    "Russian": 0.1,
    "French": 0.1,
    "German": 0.05,
}
_LANGS = list(_LANG_WEIGHTS)

# One line per subject: English | Spanish | Chinese | Russian | French | German.
_SUBJECTS = """
baking bread|hacer pan|烤面包|выпечка хлеба|la fabrication du pain|Brot backen
learning Python|aprender Python|Python编程|изучение Python|l'apprentissage de Python|Python lernen
running a marathon|correr un maratón|跑马拉松|марафонский бег|la course de marathon|Marathonlaufen
growing tomatoes|cultivar tomates|种西红柿|выращивание томатов|la culture des tomates|Tomatenanbau
saving money|ahorrar dinero|存钱|экономия денег|l'épargne|Geld sparen
improving your sleep|dormir mejor|改善睡眠|здоровый сон|le sommeil|besser schlafen
playing the guitar|tocar la guitarra|弹吉他|игра на гитаре|la guitare|Gitarre spielen
speaking in public|hablar en público|公开演讲|ораторское искусство|la prise de parole en public|öffentliches Reden
cooking rice|cocinar arroz|煮米饭|варка риса|la cuisson du riz|Reis kochen
writing a CV|escribir un currículum|写简历|составление резюме|la rédaction d'un CV|Lebenslauf schreiben
caring for a cat|cuidar a un gato|照顾猫|уход за кошкой|l'éducation d'un chat|Katzenpflege
keeping houseplants alive|cuidar plantas de interior|养室内植物|уход за комнатными растениями|l'entretien des plantes d'intérieur|Zimmerpflanzen
preparing for a job interview|preparar una entrevista de trabajo|准备面试|подготовка к собеседованию|la préparation d'un entretien d'embauche|Vorstellungsgespräche
learning to swim|aprender a nadar|游泳|обучение плаванию|la natation|Schwimmen lernen
making coffee|preparar café|煮咖啡|приготовление кофе|la préparation du café|Kaffee kochen
studying for an exam|estudiar para un examen|备考|подготовка к экзаменам|la révision des examens|Prüfungsvorbereitung
taking photos with a phone|hacer fotos con el móvil|用手机拍照|мобильная фотография|la photo au téléphone|Handyfotografie
planning a trip|planificar un viaje|规划旅行|планирование поездки|l'organisation d'un voyage|Reiseplanung
fixing a bicycle|arreglar una bicicleta|修自行车|ремонт велосипеда|la réparation d'un vélo|Fahrradreparatur
meditating|meditar|冥想|медитация|la méditation|Meditation
playing chess|jugar al ajedrez|下国际象棋|игра в шахматы|le jeu d'échecs|Schach
cleaning the kitchen|limpiar la cocina|打扫厨房|уборка кухни|le ménage de la cuisine|Küchenputz
drawing portraits|dibujar retratos|画肖像|рисование портретов|le dessin de portraits|Porträtzeichnen
managing stress|manejar el estrés|缓解压力|борьба со стрессом|la gestion du stress|Stressbewältigung
"""
SUBJECTS = {
    lang: [line.split("|")[i] for line in _SUBJECTS.strip().splitlines()] for i, lang in enumerate(_LANGS)
}

# Per language, "|"-separated parts; {s} is the subject, {S} the subject capitalised.
_TEXT = {
    "English": {
        "prompt": "How do I get started with {s}?|Give me some tips for {s}.|What should a beginner know about {s}?|What are common mistakes when {s}?|I want to get better at {s}. Any advice?|Can you explain the basics of {s}?|What is the best way to approach {s}?",
        "pre": "|Hi! |Quick question: ",
        "post": "| Thanks!| Please keep it short.| I am a complete beginner.",
        "open": "Good question! Here are some tips for {s}.|Here is how to approach {s}.|Sure, {s} is much easier with a plan.",
        "tip": "When {s}, start with the basics and practise a little every day.|{S} takes patience and regular practice.|A common mistake with {s} is trying to do too much too soon.|Find a good beginner guide to {s} and follow it step by step.|Write down your progress so you can see what works.|Ask someone experienced for feedback.|Set aside at least twenty minutes a day.|Do not get discouraged if it feels hard at first.",
        "close": "I hope this helps!|Good luck!|Let me know if you want more detail.",
        "head": "Key steps:|A simple plan:",
        "refuse": "I'm sorry, but I can't help with that.|As an AI, I cannot give advice about {s}.|I'm afraid I am not able to answer this question.",
        "rude": "Whatever. Figure it out yourself.|That is a boring question.|Why would you even ask that?",
        "pad": "That is a really interesting question that many people ask.|There are many different opinions on this topic.|It depends on a lot of factors and everyone is different.|In general, things can be done in many ways.|It is important to think about it carefully.",
        "terse": "No.|It depends.|Google it.",
    },
    "Spanish": {
        "prompt": "Dame algunos consejos para {s}.|¿Qué debe saber un principiante para {s}?|¿Qué errores son comunes al {s}?|¿Cuál es la mejor manera de {s}?|Explícame cómo {s}, paso a paso.|¿Cómo empiezo? Quiero {s}.",
        "pre": "|¡Hola! |Una pregunta rápida: ",
        "post": "| ¡Gracias!| Responde brevemente, por favor.| Soy principiante total.",
        "open": "¡Buena pregunta! Aquí tienes algunos consejos para {s}.|Te explico cómo {s} de forma sencilla.|Claro, {s} es más fácil con un plan.",
        "tip": "Para {s}, empieza por lo básico y practica un poco cada día.|{S} requiere paciencia y práctica regular.|Un error común al {s} es querer avanzar demasiado rápido.|Busca una buena guía para principiantes sobre cómo {s} y síguela paso a paso.|Anota tus avances para ver qué funciona.|Pide consejo a alguien con experiencia.|Dedica al menos veinte minutos al día.|No te desanimes si al principio cuesta.",
        "close": "¡Espero que te sirva!|¡Mucha suerte!|Si quieres más detalles, dímelo.",
        "head": "Pasos clave:|Un plan sencillo:",
        "refuse": "Lo siento, pero no puedo ayudarte con eso.|Como IA, no puedo dar consejos sobre cómo {s}.|Lamentablemente, no puedo responder a esta pregunta.",
        "rude": "Búscate la vida.|Qué pregunta tan aburrida.|¿Para qué preguntas eso?",
        "pad": "Es una pregunta muy interesante que mucha gente se hace.|Hay muchas opiniones diferentes sobre este tema.|Depende de muchos factores y cada persona es diferente.|En general, las cosas se pueden hacer de muchas maneras.|Es importante pensarlo con calma.",
        "terse": "No.|Depende.|Búscalo en Google.",
    },
    "Chinese": {
        "prompt": "{s}应该怎么入门？|请给我一些关于{s}的建议。|初学者学习{s}需要注意什么？|{s}有哪些常见错误？|我想提高{s}的水平，有什么建议？|能解释一下{s}的基础知识吗？",
        "pre": "|你好！|问一下：",
        "post": "|谢谢！|请简短回答。|我是完全的新手。",
        "open": "好问题！下面是关于{s}的一些建议。|{s}其实可以这样入手。|当然，有计划的话{s}会容易很多。",
        "tip": "{s}时，先从基础开始，每天练习一点。|{s}最重要的是坚持。|{s}常见的错误是一开始就做得太多。|找一本适合初学者的{s}指南，一步一步跟着做。|记录你的进步，看看什么方法有效。|请有经验的人给你反馈。|每天至少留出二十分钟。|刚开始觉得难也不要灰心。",
        "close": "希望对你有帮助！|祝你好运！|如果需要更多细节，请告诉我。",
        "head": "主要步骤：|简单的计划：",
        "refuse": "抱歉，我无法回答这个问题。|作为人工智能，我不能提供关于{s}的建议。|对不起，这个问题我帮不了你。",
        "rude": "自己去想吧。|这个问题太无聊了。|你为什么要问这个？",
        "pad": "这是一个很多人都会问的非常有趣的问题。|关于这个话题有很多不同的看法。|这取决于很多因素，每个人都不一样。|一般来说，事情可以用很多方法来做。|认真思考这个问题是很重要的。",
        "terse": "不知道。|看情况。|自己查。",
    },
    "Russian": {
        "prompt": "Меня интересует {s}. С чего начать?|Дай несколько советов на тему «{s}».|Какие ошибки чаще всего делают новички? Тема: {s}.|Объясни основы. Тема: {s}.|Тема «{s}»: что важно знать новичку?|Как лучше всего подойти к теме «{s}»?",
        "pre": "|Привет! |Быстрый вопрос: ",
        "post": "| Спасибо!| Ответь коротко, пожалуйста.| Я полный новичок.",
        "open": "Хороший вопрос! Вот несколько советов на тему «{s}».|{S} — это проще, чем кажется, если есть план.|Конечно! Вот с чего начать, если вас интересует {s}.",
        "tip": "{S} требует терпения и регулярной практики.|Начните с основ и занимайтесь понемногу каждый день.|Частая ошибка, когда речь идёт о теме «{s}», — браться сразу за слишком многое.|Найдите хорошее руководство для начинающих на тему «{s}» и следуйте ему шаг за шагом.|Записывайте свои успехи, чтобы видеть, что работает.|Попросите совета у человека с опытом.|Выделяйте на это хотя бы двадцать минут в день.|Не расстраивайтесь, если сначала будет трудно.",
        "close": "Надеюсь, это поможет!|Удачи!|Если нужно подробнее, спрашивайте.",
        "head": "Основные шаги:|Простой план:",
        "refuse": "Извините, но я не могу помочь с этим.|Как ИИ, я не могу давать советы на тему «{s}».|К сожалению, я не могу ответить на этот вопрос.",
        "rude": "Разбирайся сам.|Скучный вопрос.|Зачем ты вообще это спрашиваешь?",
        "pad": "Это очень интересный вопрос, который задают многие.|На эту тему существует много разных мнений.|Всё зависит от множества факторов, и все люди разные.|В целом всё можно сделать по-разному.|Важно хорошо всё обдумать.",
        "terse": "Нет.|Зависит.|Погугли.",
    },
    "French": {
        "prompt": "Comment débuter avec {s} ?|Donne-moi quelques conseils sur {s}.|Que doit savoir un débutant sur {s} ?|Quelles sont les erreurs fréquentes concernant {s} ?|Je veux progresser, le sujet est {s}. Des conseils ?|Peux-tu m'expliquer les bases ? Sujet : {s}.",
        "pre": "|Bonjour ! |Petite question : ",
        "post": "| Merci !| Réponds brièvement, s'il te plaît.| Je suis grand débutant.",
        "open": "Bonne question ! Voici quelques conseils sur {s}.|Voici comment aborder {s}.|Bien sûr, {s} devient plus simple avec un plan.",
        "tip": "{S} demande surtout de la régularité : pratiquez un peu chaque jour.|Commencez par les bases et avancez pas à pas.|Une erreur fréquente concernant {s} est de vouloir aller trop vite.|Trouvez un bon guide pour débutants sur {s} et suivez-le étape par étape.|Notez vos progrès pour voir ce qui fonctionne.|Demandez l'avis de quelqu'un d'expérimenté.|Prévoyez au moins vingt minutes par jour.|Ne vous découragez pas si c'est difficile au début.",
        "close": "J'espère que cela vous aidera !|Bon courage !|Dites-moi si vous voulez plus de détails.",
        "head": "Étapes clés :|Un plan simple :",
        "refuse": "Je suis désolé, mais je ne peux pas vous aider avec cela.|En tant qu'IA, je ne peux pas donner de conseils sur {s}.|Malheureusement, je ne suis pas en mesure de répondre à cette question.",
        "rude": "Débrouille-toi tout seul.|Quelle question ennuyeuse.|Pourquoi tu demandes ça ?",
        "pad": "C'est une question vraiment intéressante que beaucoup de gens se posent.|Il existe de nombreuses opinions différentes sur ce sujet.|Cela dépend de beaucoup de facteurs et chacun est différent.|En général, les choses peuvent se faire de plusieurs façons.|Il est important d'y réfléchir attentivement.",
        "terse": "Non.|Ça dépend.|Cherche sur Google.",
    },
    "German": {
        "prompt": "Wie fange ich an? Thema: {s}.|Gib mir ein paar Tipps zum Thema {s}.|Was sollte ein Anfänger beim Thema {s} wissen?|Welche Fehler macht man oft beim Thema {s}?|Ich möchte besser werden, Thema {s}. Hast du Tipps?|Kannst du mir die Grundlagen erklären? Thema: {s}.",
        "pre": "|Hallo! |Kurze Frage: ",
        "post": "| Danke!| Bitte antworte kurz.| Ich bin absoluter Anfänger.",
        "open": "Gute Frage! Hier sind ein paar Tipps zum Thema {s}.|So kannst du das Thema {s} angehen.|Klar, mit einem Plan wird das Thema {s} viel einfacher.",
        "tip": "Beim Thema {s} zählt vor allem Regelmäßigkeit: übe jeden Tag ein wenig.|Fang mit den Grundlagen an und geh Schritt für Schritt vor.|Ein häufiger Fehler beim Thema {s} ist, zu viel auf einmal zu wollen.|Such dir eine gute Anleitung für Anfänger zum Thema {s} und folge ihr Schritt für Schritt.|Schreib deine Fortschritte auf, damit du siehst, was funktioniert.|Bitte jemanden mit Erfahrung um Rückmeldung.|Plane mindestens zwanzig Minuten pro Tag ein.|Lass dich nicht entmutigen, wenn es am Anfang schwer ist.",
        "close": "Ich hoffe, das hilft!|Viel Erfolg!|Sag Bescheid, wenn du mehr Details brauchst.",
        "head": "Wichtige Schritte:|Ein einfacher Plan:",
        "refuse": "Es tut mir leid, aber dabei kann ich nicht helfen.|Als KI kann ich keine Ratschläge zum Thema {s} geben.|Leider kann ich diese Frage nicht beantworten.",
        "rude": "Find es doch selbst heraus.|Was für eine langweilige Frage.|Warum fragst du so etwas überhaupt?",
        "pad": "Das ist eine wirklich interessante Frage, die sich viele Menschen stellen.|Zu diesem Thema gibt es viele verschiedene Meinungen.|Das hängt von vielen Faktoren ab, und jeder Mensch ist anders.|Im Allgemeinen kann man Dinge auf viele Arten tun.|Es ist wichtig, gründlich darüber nachzudenken.",
        "terse": "Nein.|Kommt darauf an.|Google es.",
    },
}
_PARTS = {lang: {k: v.split("|") for k, v in fields.items()} for lang, fields in _TEXT.items()}
_JOIN = {lang: "" if lang == "Chinese" else " " for lang in _LANGS}

# The kinds of losing answer and how often each is drawn: some are usually longer than the winner
# (repetitive, padded, a long refusal), some usually shorter (terse, rude, truncated), some either.
LOSER_KINDS = {
    "refusal": 0.16,
    "off_topic": 0.16,
    "repetitive": 0.13,
    "truncated": 0.11,
    "wrong_language": 0.12,
    "rude": 0.08,
    "terse": 0.08,
    "padded": 0.16,
}
#: Share of template-subject pairs that are test prompts (by a hash of their text, for every seed).
TEST_SHARE = 0.3


def _fill(text: str, subject: str) -> str:
    return text.format(s=subject, S=subject[:1].upper() + subject[1:])


def is_test_prompt(lang: str, template: str, subject: str) -> bool:
    """Whether a template-subject pair belongs to test prompts: a fixed hash, the same for every seed."""
    digest = hashlib.sha256(f"{lang}\x1f{template}\x1f{subject}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 1000 < TEST_SHARE * 1000


def _cores(split: str) -> dict[str, list[tuple[str, int]]]:
    """Per language, the (template, subject index) pairs of one split."""
    want = split == "test"
    return {
        lang: [
            (t, j)
            for t in _PARTS[lang]["prompt"]
            for j, s in enumerate(SUBJECTS[lang])
            if is_test_prompt(lang, t, s) == want
        ]
        for lang in _LANGS
    }


_CORES = {split: _cores(split) for split in ("train", "test")}


class _Writer:
    """Answers in one language about one subject, drawn with one generator."""

    def __init__(self, rng: np.random.Generator, lang: str, subject: int):
        self.rng, self.lang, self.parts = rng, lang, _PARTS[lang]
        self.subject = SUBJECTS[lang][subject]

    def pick(self, field: str, k: int | None = None) -> list[str] | str:
        items = self.parts[field]
        if k is None:
            return _fill(items[self.rng.integers(len(items))], self.subject)
        idx = self.rng.choice(len(items), size=min(k, len(items)), replace=False)
        return [_fill(items[i], self.subject) for i in idx]

    def join(self, sentences: list[str]) -> str:
        return _JOIN[self.lang].join(sentences)

    def good(self) -> str:
        """A helpful answer: an on-topic opening, one to four tips (prose or a list), maybe a closing."""
        style = self.rng.choice(3, p=[0.25, 0.5, 0.25])  # brief, prose, markdown list
        if style == 0:
            tips = self.pick("tip", int(self.rng.integers(1, 3)))
            if not any(self.subject.lower() in t.lower() for t in tips):
                tips = [self.pick("open"), *tips]
            return self.join(tips)
        tips = self.pick("tip", int(self.rng.integers(2, 5)))
        close = [self.pick("close")] if self.rng.random() < 0.5 else []
        if style == 1:
            return self.join([self.pick("open"), *tips, *close])
        numbered = self.rng.random() < 0.5
        items = [f"{i}. {t}" if numbered else f"- {t}" for i, t in enumerate(tips, 1)]
        body = "\n".join([self.pick("head"), *items])
        return "\n\n".join([self.pick("open"), body, *close])

    def bad(self, kind: str) -> str:
        """A losing answer of the given kind."""
        r = self.rng
        if kind == "refusal":
            first = self.pick("refuse")
            return self.join([first, *self.pick("pad", int(r.integers(0, 3)))]) if r.random() < 0.5 else first
        if kind == "off_topic":
            others = [j for j, s in enumerate(SUBJECTS[self.lang]) if s != self.subject]
            return _Writer(r, self.lang, others[r.integers(len(others))]).good()
        if kind == "repetitive":
            line = self.pick("tip" if r.random() < 0.6 else "pad")
            sep = "\n" if r.random() < 0.3 else _JOIN[self.lang]
            return sep.join([line] * int(r.integers(3, 7)))
        if kind == "truncated":
            text = self.good()
            return text[: max(8, int(len(text) * r.uniform(0.25, 0.7)))].rstrip(" .,:;!?。，：！？\n")
        if kind == "wrong_language":
            others = [x for x in _LANGS if x != self.lang]
            subject = SUBJECTS[self.lang].index(self.subject)
            return _Writer(r, others[r.integers(len(others))], subject).good()
        if kind == "rude":
            return self.join(self.pick("rude", int(r.integers(1, 3))))
        if kind == "terse":
            return self.pick("terse")
        vague = self.pick("pad", int(r.integers(2, 5)))  # padded: filler, no subject, no advice
        return self.join(vague + ([self.parts["tip"][4 + int(r.integers(4))]] if r.random() < 0.5 else []))


def _row_id(kind: str, i: int, seed: int) -> str:
    return hashlib.sha256(f"{kind}-{seed}-{i}".encode()).hexdigest()[:32]


def make_rows(n: int, seed: int, kind: str) -> pd.DataFrame:
    """``n`` synthetic rows in the WSDM train schema, deterministic for ``seed``.

    ``kind="test"`` draws prompts from the test template-subject pairs, any other kind from the
    training pairs, so test rows never share a prompt with rows of another kind (for any seeds).
    """
    rng = np.random.default_rng(seed)
    cores = _CORES["test" if kind == "test" else "train"]
    probs = np.array([_LANG_WEIGHTS[x] for x in _LANGS])
    loser_kinds = list(LOSER_KINDS)
    loser_p = np.array([LOSER_KINDS[k] for k in loser_kinds])
    rows = []
    for i in range(n):
        lang = _LANGS[rng.choice(len(_LANGS), p=probs / probs.sum())]
        template, subject = cores[lang][rng.integers(len(cores[lang]))]
        writer = _Writer(rng, lang, subject)
        prompt = writer.pick("pre") + _fill(template, writer.subject) + writer.pick("post")
        good = writer.good()
        loser = loser_kinds[rng.choice(len(loser_kinds), p=loser_p / loser_p.sum())]
        bad = writer.bad(loser)
        a_wins = bool(rng.integers(2))
        rows.append(
            {
                "id": _row_id(kind, i, seed),
                "prompt": prompt,
                "response_a": good if a_wins else bad,
                "response_b": bad if a_wins else good,
                "winner": "model_a" if a_wins else "model_b",
                "model_a": "synthetic-helpful" if a_wins else f"synthetic-{loser}",
                "model_b": f"synthetic-{loser}" if a_wins else "synthetic-helpful",
                "language": lang,
            }
        )
    return pd.DataFrame(rows)


def check_no_leakage(train: pd.DataFrame, test: pd.DataFrame, where: str = "synthetic competition") -> None:
    """Raise :class:`DataError` when a training row duplicates a test row, exactly or A/B swapped."""
    leak = find_leakage(train, test)
    if leak.total:
        raise DataError(
            f"{where}: training rows duplicate test rows, so a score on the test rows would be "
            f"measured on rows the model has seen: {leak.summary()}"
        )


def make_demo_competition(out_dir: str | Path, n_train: int = 400, n_test: int = 120, seed: int = 0) -> Path:
    """Write ``train.parquet``, ``test.parquet``, ``sample_submission.csv`` (+ labels for scoring).

    ``test_labels.parquet`` holds the test winners so the demo can score itself; a real
    competition folder has no such file. Raises :class:`DataError` (and writes nothing) if a
    training row duplicates a test row.
    """
    out = Path(out_dir)
    train = make_rows(n_train, seed, "train")
    test_full = make_rows(n_test, seed + 1, "test")
    check_no_leakage(train, test_full, str(out))
    out.mkdir(parents=True, exist_ok=True)
    train.to_parquet(out / "train.parquet", index=False)
    test = test_full.drop(columns=["winner", "model_a", "model_b"]).assign(scored=True)
    test.to_parquet(out / "test.parquet", index=False)
    test_full.to_parquet(out / "test_labels.parquet", index=False)
    pd.DataFrame({"id": test["id"], "winner": "model_a"}).to_csv(out / "sample_submission.csv", index=False)
    (out / "README.txt").write_text(SYNTHETIC_NOTE + "\n", encoding="utf-8")
    return out
