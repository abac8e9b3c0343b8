"""Demo material: a tiny, learnable sentence classification task in Japanese and English,
built from templates (does a sentence talk about the weather or about food?), and a stand-in
model directory for trying the harness before a pre-trained one exists.

The shipped copy of the task is `data/tasks/weather_food/{train,dev}.tsv`;
`python -m finetune.toy_task OUT_DIR` rebuilds it. Both topics share the same openings
("This morning", "今朝は"...), so only the clause tells the topic apart."""
from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

TIMES_EN = ['This morning', 'Tomorrow', 'Last night', 'On Sunday', 'In the evening', 'Yesterday',
            'Every spring', 'In our town', 'Near the river', 'Today']
TIMES_JA = ['今朝', '明日', '昨日の夜', '日曜日', '夕方', '昨日', '春', 'この町で', '川の近くで', '今日']

CLAUSES = {
    'weather': {
        'en': ['it will rain heavily', 'the sky is clear and sunny', 'a strong wind blows from the sea',
               'thick clouds cover the mountains', 'snow falls on the roads', 'the air feels cold and wet',
               'a storm brings thunder and rain', 'the temperature rises above thirty degrees',
               'fog hides the valley', 'light rain turns to snow', 'the weather is warm and dry',
               'dark clouds promise a wet afternoon'],
        'ja': ['雨が強く降る', '空が晴れて暖かい', '海から強い風が吹く', '厚い雲が山をおおう', '道に雪が積もる',
               '空気が冷たくて湿っている', '雷と大雨の嵐が来る', '気温が三十度をこえる', '霧が谷をかくす',
               '小雨が雪に変わる', '天気が良くて乾いている', '雲が多くて午後は雨になる'],
    },
    'food': {
        'en': ['we cook rice with fresh vegetables', 'she bakes sweet bread for breakfast',
               'the soup tastes salty and hot', 'they eat grilled fish with lemon', 'my father makes noodles with egg',
               'the cake is full of cream and fruit', 'we drink green tea after lunch', 'he fries chicken in a big pan',
               'the restaurant serves spicy curry', 'children eat apples and cheese', 'the cook cuts meat for dinner',
               'we share a bowl of warm soup'],
        'ja': ['野菜とご飯を炊く', '朝ご飯に甘いパンを焼く', 'スープが塩からくて熱い', '焼いた魚を食べる',
               '父が卵のうどんを作る', 'ケーキに果物がのっている', '昼ご飯のあとに緑茶を飲む', '大きななべで肉を焼く',
               '店が辛いカレーを出す', '子どもがりんごを食べる', '料理人が夕食の肉を切る', '温かいみそ汁を飲む'],
    },
}
LABELS = ('weather', 'food')


def topic_sentences() -> list[tuple[str, str]]:
    """Every (sentence, topic) the templates make: 10 openings x 12 clauses x 2 topics x 2 languages."""
    out = []
    for topic in LABELS:
        for time in TIMES_EN:
            out += [(f'{time} {clause}.', topic) for clause in CLAUSES[topic]['en']]
        for time in TIMES_JA:
            sep = '' if time.endswith('で') else 'は'
            out += [(f'{time}{sep}{clause}。', topic) for clause in CLAUSES[topic]['ja']]
    return out


def make_topic_task(n_train: int = 300, n_dev: int = 100, seed: int = 0) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, dev) lists of (sentence, label), disjoint, drawn with `seed` from `topic_sentences()`."""
    pool = topic_sentences()
    if n_train < 1 or n_dev < 1 or n_train + n_dev > len(pool):
        raise ValueError(f"n_train and n_dev must be positive and add up to at most {len(pool)}, got {n_train} + {n_dev}")
    random.Random(seed).shuffle(pool)
    return pool[:n_train], pool[n_train:n_train + n_dev]


def write_tsv(path: str | Path, header: list[str], rows: list[tuple]) -> Path:
    """A TSV file with a header line (no quoting: fields never hold tabs or newlines)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open('w', newline='', encoding='utf-8') as f:
        w = csv.writer(f, delimiter='\t', quoting=csv.QUOTE_NONE, lineterminator='\n')
        w.writerow(header)
        w.writerows(rows)
    return path


def write_topic_task(out_dir: str | Path, n_train: int = 300, n_dev: int = 100, seed: int = 0) -> Path:
    """Write `out_dir/train.tsv` and `out_dir/dev.tsv` (columns text_a, label)."""
    train, dev = make_topic_task(n_train, n_dev, seed)
    write_tsv(Path(out_dir) / 'train.tsv', ['text_a', 'label'], train)
    write_tsv(Path(out_dir) / 'dev.tsv', ['text_a', 'label'], dev)
    return Path(out_dir)


def write_standin_model(out_dir: str | Path, tokenizer_dir: str | Path = 'data/sample/tokenizer', seed: int = 0) -> Path:
    """A `tiny` ElectraForPreTraining with fresh weights, saved with the tokenizer the way
    `python -m pretrain export` writes OUT_DIR/discriminator: a stand-in for a pre-trained one."""
    import torch
    from transformers import ElectraForPreTraining

    from pretrain.config import electra_configs, get_config
    from pretrain.prepare.tokenizer import load_tokenizer

    from _utils.quiet_transformers import quiet_transformers
    tokenizer = load_tokenizer(tokenizer_dir)
    torch.manual_seed(seed)
    model = ElectraForPreTraining(electra_configs(get_config('tiny'), tokenizer)[0])
    with quiet_transformers():
        model.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
    return Path(out_dir)


if __name__ == '__main__':
    target = sys.argv[1] if len(sys.argv) > 1 else 'data/tasks/weather_food'
    print(f'wrote {write_topic_task(target)}')
