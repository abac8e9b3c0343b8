"""Small task files in the formats of the GLUE, JGLUE and SQuAD releases, written for this
project (every sentence composed here, from the word lists below), so that every task type runs
end to end on a tiny model in CI, through the same code as the real files.

    data/tasks/jglue_fixture/datasets/{jsts,jnli,jcommonsenseqa,jsquad}-v1.3/{train,valid}-v1.3.json
    data/tasks/jglue_fixture/datasets/marc_ja-v1.1/{train,valid}-v1.0.json  (+ an empty marc_ja-v1.2/)
    data/tasks/glue_fixture/{CoLA,SST-2,MRPC,STS-B,RTE}/{train,dev}.tsv
    data/tasks/squad_fixture/{train,dev}-v1.1.json

JGLUE's layout is the repository's `datasets/` folder; MARC-ja mirrors what a user has after
running JGLUE's MARC-ja script (its default version writes train-v1.0.json into marc_ja-v1.1/,
and the repository ships an empty marc_ja-v1.2/). `python -m finetune.fixtures [DATA_TASKS_DIR]`
rewrites them byte for byte. The tasks are small (a few dozen rows each) and made from
templates: they check the plumbing, not a model's quality."""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

# ---- Japanese word lists (captions of everyday scenes) -------------------------------------
# (word, synonym): a paraphrase swaps every word for its synonym
SUBJECTS_JA = [('男性', '男の人'), ('女性', '女の人'), ('子供', '子ども'), ('犬', 'イヌ'), ('猫', 'ネコ'),
               ('少年', '男の子'), ('少女', '女の子'), ('老人', 'お年寄り')]
PLACES_JA = [('公園', '広場'), ('海辺', '浜辺'), ('台所', 'キッチン'), ('道路', '通り'), ('部屋の中', '室内'),
             ('川の近く', '川辺'), ('駅のホーム', 'ホーム'), ('雪の上', '雪原')]
ACTIONS_JA = [('走って', '駆けて'), ('座って', '腰かけて'), ('ボールで遊んで', 'ボール遊びをして'),
              ('本を読んで', '読書をして'), ('寝そべって', '横になって'), ('食事をして', 'ご飯を食べて')]
# an action and one that cannot happen at the same time
OPPOSITES_JA = {'走って': '立ち止まって', '座って': '立って', 'ボールで遊んで': 'じっと眠って',
                '本を読んで': '目を閉じて眠って', '寝そべって': '走り回って', '食事をして': '何も食べずに待って'}
EXTRAS_JA = ['空は晴れています', '近くに赤い車が止まっています', '遠くで音楽が流れています', '風が少し吹いています',
             '隣に青いかばんが置いてあります', '周りには誰もいません']

PRODUCTS_JA = ['電気ケトル', 'ヘッドホン', '水筒', '目覚まし時計', 'リュック', '傘', 'マグカップ', '掃除機',
               '炊飯器', 'スニーカー', 'ボールペン', '加湿器']
GOOD_JA = ['とても使いやすく、毎日役に立っています', '値段のわりに作りがしっかりしていて満足です',
           '軽くて持ち運びが楽なので気に入りました', 'デザインがかわいくて家族にも好評です',
           '届いてすぐに使えて、説明書もわかりやすかったです', '音が静かで、思っていたよりずっと快適です']
GOOD_END_JA = ['買ってよかったです。', 'またリピートしたいと思います。', '友人にもすすめました。', '星五つです。']
BAD_JA = ['一週間で壊れてしまい、がっかりしました', '説明と違って小さく、使い物になりませんでした',
          '傷だらけの状態で届き、とても残念です', '音がうるさくて夜は使えません',
          'すぐに電源が入らなくなり、返品しました', '値段が高いわりに品質が悪いと感じました']
BAD_END_JA = ['二度と買いません。', 'おすすめできません。', '本当に後悔しています。', '星一つです。']

# (question, right answer): the other questions' answers are the wrong options
COMMONSENSE_JA = [
    ('ご飯を食べるときに使う二本の棒は？', '箸'), ('雨の日にさして歩くものは？', '傘'),
    ('手紙を出しに行く場所は？', '郵便局'), ('病気になったときに行く場所は？', '病院'),
    ('本を借りることができる場所は？', '図書館'), ('夜空に光って見えるものは？', '星'),
    ('寒い日に首に巻くものは？', 'マフラー'), ('時間を知るために見るものは？', '時計'),
    ('魚が泳いでいる大きな水の広がりは？', '海'), ('パンを焼くときに使う電気の道具は？', 'トースター'),
    ('字を消すときに使う文房具は？', '消しゴム'), ('電車に乗るために行く場所は？', '駅'),
    ('髪を切ってもらう店は？', '床屋'), ('野菜や果物を冷やしておく家電は？', '冷蔵庫'),
    ('洗った服を乾かすために干す場所は？', 'ベランダ'), ('火事のときに呼ぶ人は？', '消防士'),
    ('子供が勉強しに通う場所は？', '学校'), ('暗い部屋を明るくするものは？', '電灯'),
    ('お湯を沸かす道具は？', 'やかん'), ('歯をみがくときに使うものは？', '歯ブラシ'),
    ('ワンと鳴く動物は？', '犬'), ('ニャーと鳴く動物は？', '猫'),
    ('紙を切るときに使う道具は？', 'はさみ'), ('お金を預ける場所は？', '銀行'),
    ('山の上に積もる白く冷たいものは？', '雪'), ('体の重さを量る道具は？', '体重計'),
    ('雨のあとに空にかかる七色のものは？', '虹'), ('手を洗ったあとにふくものは？', 'タオル'),
    ('映画を見に行く場所は？', '映画館'), ('飛行機が離着陸する場所は？', '空港'),
    ('朝に鳴って目を覚まさせるものは？', '目覚まし時計'), ('料理の味をしょっぱくする調味料は？', '塩'),
    ('足にはいて歩くものは？', '靴'), ('遠くの人と話すための機械は？', '電話'),
    ('汚れた食器を洗う場所は？', '流し'), ('写真をとるための道具は？', 'カメラ'),
    ('暑い日に部屋を涼しくする家電は？', 'エアコン'), ('野菜を売っている店は？', '八百屋'),
    ('眠るときに頭をのせるものは？', '枕'), ('字を書くための細長い道具は？', '鉛筆'),
    ('蜂が集めて作る甘いものは？', 'はちみつ'), ('木がたくさん生えている場所は？', '森'),
    ('車にガソリンを入れる場所は？', 'ガソリンスタンド'), ('魚を釣るときに使う道具は？', '釣り竿'),
    ('夏に海で泳ぐときに着るものは？', '水着'), ('鍵をかけて家を守るためのものは？', '錠'),
    ('荷物を入れて背負うかばんは？', 'リュック'), ('道を照らす夜の明かりは？', '街灯'),
    ('卵を産む鳥として飼われる動物は？', '鶏'), ('牛乳から作られる黄色い食べ物は？', 'チーズ'),
    ('小麦粉から作られる細長い食べ物は？', 'うどん'), ('体温を測る道具は？', '体温計'),
    ('切手をはって送るものは？', 'はがき'), ('公園で子供が乗って揺らす遊具は？', 'ブランコ'),
    ('目が悪い人がかけるものは？', '眼鏡'), ('冬に部屋を暖める道具は？', 'ストーブ'),
]

# JSQuAD-style paragraphs: (title, text, [(question, [answers])]); each answer occurs in the text
# (the first at its first occurrence unless a start is given as (text, start_in_text))
PARAGRAPHS_JA = [
    ('日本茶', '日本茶は、チャノキの葉から作られる飲み物である。代表的な種類には煎茶、玉露、ほうじ茶などがある。'
              '煎茶は蒸した葉をもみながら乾かして作られ、日本で最も多く飲まれている。玉露は収穫の前に日光を'
              'さえぎって育てるため、うまみが強い。',
     [('日本茶は何の葉から作られるか。', ['チャノキ']),
      ('日本で最も多く飲まれている日本茶は何か。', ['煎茶']),
      ('収穫の前に日光をさえぎって育てるお茶は何か。', ['玉露']),
      ('玉露はどのような味の特徴があるか。', ['うまみが強い', 'うまみ'])]),
    ('自転車', '自転車は、人がペダルをこいで進む二輪の乗り物である。十九世紀のヨーロッパで改良が重ねられ、'
              '現在の形に近づいた。日本では通勤や通学、買い物などに広く使われている。'
              '道路交通法では軽車両に分類され、原則として車道の左側を走る。',
     [('自転車は人が何をこいで進む乗り物か。', ['ペダル']),
      ('自転車が現在の形に近づいたのはいつのどこか。', ['十九世紀のヨーロッパ']),
      ('道路交通法で自転車は何に分類されるか。', ['軽車両']),
      ('自転車は原則として車道のどちら側を走るか。', ['左側', '車道の左側'])]),
    ('灯台', '灯台は、船に陸地の位置や危険な場所を知らせるための施設である。夜には強い光を放ち、'
            '光の色や点滅の間隔は灯台ごとに決められている。昼間でも見分けられるように、白や赤、黒などの'
            '塗装がされていることが多い。近年は人工衛星を使った位置の測定が広まったが、灯台は今も海の安全を支えている。',
     [('灯台は何に陸地の位置を知らせるか。', ['船']),
      ('灯台ごとに決められているのは光の色と何か。', ['点滅の間隔']),
      ('昼間でも見分けられるように何がされているか。', ['塗装', '白や赤、黒などの塗装']),
      ('近年広まった位置の測定には何が使われるか。', ['人工衛星'])]),
    ('みかん', 'みかんは、冬に多く出回る柑橘類の果物である。皮が手でむきやすく、そのまま食べられることから'
              '家庭で親しまれてきた。主な産地は和歌山県や愛媛県、静岡県など、温暖な地域に集まっている。'
              '果肉にはビタミンCが多く含まれている。',
     [('みかんが多く出回る季節はいつか。', ['冬']),
      ('みかんはどのような種類の果物か。', ['柑橘類', '柑橘類の果物']),
      ('みかんの主な産地が集まっているのはどのような地域か。', ['温暖な地域']),
      ('みかんの果肉に多く含まれる栄養は何か。', ['ビタミンC'])]),
    ('将棋', '将棋は、二人で交互に駒を動かして相手の王将を追い詰める盤上の遊びである。盤は縦横九つのますに'
            '区切られ、それぞれが二十枚の駒を持って始める。取った相手の駒を自分の駒として使えることが、'
            '西洋のチェスとの大きな違いである。',
     [('将棋では相手の何を追い詰めるか。', ['王将']),
      ('将棋の盤は縦横いくつのますに区切られているか。', ['九つ', '縦横九つ']),
      ('将棋を始めるとき、それぞれが持つ駒は何枚か。', ['二十枚']),
      ('取った駒を使えることは何との大きな違いか。', ['西洋のチェス', 'チェス'])]),
    ('温泉', '温泉は、地下からわき出る温かい水のことである。火山の多い日本には各地に温泉地があり、'
            '古くから湯治に利用されてきた。泉質は含まれる成分によって分けられ、硫黄泉や炭酸水素塩泉などがある。'
            '入浴の前にはかけ湯をして体を慣らすのがよいとされる。',
     [('温泉はどこからわき出る水か。', ['地下']),
      ('日本に温泉地が多いのはなぜか。', ['火山の多い']),
      ('温泉は古くから何に利用されてきたか。', ['湯治']),
      ('入浴の前に体を慣らすためにすることは何か。', ['かけ湯'])]),
    ('そろばん', 'そろばんは、玉を指で動かして計算する道具である。中国から伝わり、江戸時代には寺子屋で'
                '読み書きとともに教えられた。上の段の玉は一つで五を表し、下の段の玉は一つで一を表す。'
                '今でも暗算の力をきたえるために習う子供がいる。',
     [('そろばんは何を指で動かして計算するか。', ['玉']),
      ('そろばんはどこから伝わったか。', ['中国']),
      ('江戸時代にそろばんが教えられた場所はどこか。', ['寺子屋']),
      ('上の段の玉は一つでいくつを表すか。', ['五'])]),
    ('紙飛行機', '紙飛行機は、一枚の紙を折って作る飛行機の模型である。材料が手に入りやすく、はさみや'
                'のりを使わずに作れるため、子供の遊びとして広まった。翼の形や重心の位置によって、'
                'まっすぐ遠くへ飛ぶものや、長い時間空に浮かぶものがある。大会では飛んだ距離や滞空時間を競う。',
     [('紙飛行機は何を折って作るか。', ['一枚の紙', '紙']),
      ('紙飛行機が子供の遊びとして広まったのは、はさみや何を使わずに作れるからか。', ['のり']),
      ('紙飛行機の飛び方を決めるのは翼の形と何か。', ['重心の位置']),
      ('大会では飛んだ距離と何を競うか。', ['滞空時間'])]),
    ('味噌汁', '味噌汁は、だしに具を入れて煮て、味噌で味をつけた汁物である。だしには昆布やかつお節、'
              '煮干しなどが使われる。具には豆腐やわかめ、ねぎのほか、季節の野菜も入れられる。味噌は香りが'
              '飛ばないように、火を止める直前に溶き入れるのがよいとされる。',
     [('味噌汁は何で味をつけた汁物か。', ['味噌']),
      ('だしに使われるものを一つ挙げると何か。', ['昆布', 'かつお節', '煮干し']),
      ('味噌はいつ溶き入れるのがよいとされるか。', ['火を止める直前']),
      ('味噌を火を止める直前に入れるのは何が飛ばないようにするためか。', ['香り'])]),
    ('図書館', '図書館は、本や雑誌、資料を集めて保存し、人々が利用できるようにした施設である。'
              '多くの公共図書館では、利用者カードを作ると本を無料で借りることができる。'
              '借りた本は決められた期間のうちに返す必要があり、期間は二週間とする図書館が多い。'
              '最近は電子書籍の貸し出しを行う図書館も増えている。',
     [('公共図書館で本を借りるために作るものは何か。', ['利用者カード']),
      ('本を借りるのにお金はいくらかかるか。', ['無料']),
      ('多くの図書館で本を借りられる期間はどれくらいか。', ['二週間']),
      ('最近、図書館が貸し出しを始めたものは何か。', ['電子書籍'])]),
]

# ---- English word lists ----------------------------------------------------------------------
SUBJECTS_EN = [('A man', 'A guy'), ('A woman', 'A lady'), ('A child', 'A kid'), ('A dog', 'A puppy'),
               ('An old man', 'An elderly man'), ('A girl', 'A young girl')]
ACTIONS_EN = [('is playing a guitar', 'is strumming a guitar'), ('is riding a bicycle', 'is cycling'),
              ('is cutting an onion', 'is slicing an onion'), ('is reading a book', 'is reading a novel'),
              ('is swimming', 'is taking a swim'), ('is cooking dinner', 'is making dinner')]
PLACES_EN = [('in the park', 'at the park'), ('on the beach', 'by the sea'), ('in the kitchen', 'in a kitchen'),
             ('on the street', 'in the road')]
FILMS_EN = ['film', 'movie', 'story', 'picture', 'drama', 'comedy']
GOOD_EN = ['a warm and funny', 'a beautifully acted', 'a clever , moving', 'a charming and honest',
           'a gripping and smart', 'a joyful , tender']
BAD_EN = ['a dull and lifeless', 'a clumsy , tedious', 'a loud and empty', 'a badly written',
          'a boring , muddled', 'a cold and pointless']
VERBS_EN = [('chased', 'the ball'), ('ate', 'an apple'), ('painted', 'the fence'), ('opened', 'the door'),
            ('found', 'a key'), ('watched', 'the birds'), ('carried', 'the box'), ('cleaned', 'the room')]
NAMES_EN = ['The dog', 'My sister', 'The teacher', 'Our neighbour', 'The farmer', 'A student', 'The child', 'Bill']

PARAGRAPHS_EN = [
    ('Lighthouse', 'A lighthouse is a tower that guides ships at night with a strong light. Each lighthouse '
                   'has its own pattern of flashes, so sailors can tell them apart. Many towers are painted '
                   'with red and white stripes to be seen during the day.',
     [('What does a lighthouse guide at night?', ['ships']),
      ('What lets sailors tell lighthouses apart?', ['its own pattern of flashes', 'pattern of flashes']),
      ('Which colours are many towers painted with?', ['red and white', 'red and white stripes'])]),
    ('Abacus', 'The abacus is a counting tool made of beads that slide on rods. Merchants in China used it '
               'for centuries before paper arithmetic became common. Today some schools still teach it to '
               'train mental arithmetic.',
     [('What slides on the rods of an abacus?', ['beads']),
      ('Who used the abacus for centuries in China?', ['Merchants']),
      ('Why do some schools still teach the abacus?', ['to train mental arithmetic', 'train mental arithmetic'])]),
    ('Tea', 'Green tea is made from the leaves of the tea plant. The leaves are steamed soon after picking, '
            'which keeps their colour. Shaded tea, grown out of direct sunlight for a few weeks, tastes '
            'sweeter.',
     [('What is green tea made from?', ['the leaves of the tea plant', 'leaves of the tea plant']),
      ('What keeps the colour of the leaves?', ['steamed soon after picking', 'steamed']),
      ('How does shaded tea taste?', ['sweeter'])]),
    ('Bicycle', 'A bicycle is a two-wheeled vehicle moved by pedals. Modern designs appeared in Europe in '
                'the nineteenth century. In many cities bicycles share the road with cars and ride on the '
                'right-hand side.',
     [('How many wheels does a bicycle have?', ['two']),
      ('Where did modern designs appear?', ['Europe', 'in Europe']),
      ('When did modern designs appear?', ['the nineteenth century', 'nineteenth century'])]),
    ('Library', 'A public library lends books to anyone with a library card. Borrowers usually return books '
                'within two weeks. Many libraries now lend electronic books as well.',
     [('What do you need to borrow books?', ['a library card', 'library card']),
      ('Within how long are books usually returned?', ['two weeks']),
      ('What else do many libraries now lend?', ['electronic books'])]),
]


# ---- writers -----------------------------------------------------------------------------------
def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in rows), encoding='utf-8')


def _tsv(path: Path, header: list[str] | None, rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ([header] if header else []) + rows
    path.write_text(''.join('\t'.join(str(x) for x in r) + '\n' for r in lines), encoding='utf-8')


def _json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False) + '\n', encoding='utf-8')


def _split(rows: list, n_train: int) -> tuple[list, list]:
    return rows[:n_train], rows[n_train:]


def _caption(s: int, p: int, a: int, syn: int = 0) -> str:
    return f'{SUBJECTS_JA[s][syn]}が{PLACES_JA[p][syn]}で{ACTIONS_JA[a][syn]}います。'


# ---- JGLUE -------------------------------------------------------------------------------------
def jsts_rows(rng: random.Random, n: int = 64) -> list[dict]:
    """Caption pairs: paraphrases (4.2-5.0), one element changed (1.8-3.4), nothing shared (0-0.8)."""
    rows = []
    for i in range(n):
        s, p, a = rng.randrange(len(SUBJECTS_JA)), rng.randrange(len(PLACES_JA)), rng.randrange(len(ACTIONS_JA))
        kind = i % 3
        if kind == 0:
            s2, p2, a2, syn, label = s, p, a, 1, rng.uniform(4.2, 5.0)
        elif kind == 1:
            s2, p2, a2 = s, p, a
            if rng.random() < 0.5:
                a2 = (a + 1 + rng.randrange(len(ACTIONS_JA) - 1)) % len(ACTIONS_JA)
            else:
                p2 = (p + 1 + rng.randrange(len(PLACES_JA) - 1)) % len(PLACES_JA)
            syn, label = rng.randrange(2), rng.uniform(1.8, 3.4)
        else:
            s2 = (s + 1 + rng.randrange(len(SUBJECTS_JA) - 1)) % len(SUBJECTS_JA)
            p2 = (p + 1 + rng.randrange(len(PLACES_JA) - 1)) % len(PLACES_JA)
            a2 = (a + 1 + rng.randrange(len(ACTIONS_JA) - 1)) % len(ACTIONS_JA)
            syn, label = 0, rng.uniform(0.0, 0.8)
        image = 100000 + rng.randrange(400000)
        rows.append({'sentence_pair_id': str(i), 'yjcaptions_id': f'{image}-{rng.randrange(90000) + 10000}-'
                                                                   f'{rng.randrange(90000) + 10000}',
                     'sentence1': _caption(s, p, a), 'sentence2': _caption(s2, p2, a2, syn),
                     'label': round(label, 1)})
    return rows


def jnli_rows(rng: random.Random, n: int = 64) -> list[dict]:
    """Premise captions with a hypothesis that follows (a detail dropped), contradicts (the
    opposite action, or nobody there) or is neutral (a detail the premise does not give)."""
    rows = []
    for i in range(n):
        s, p, a = rng.randrange(len(SUBJECTS_JA)), rng.randrange(len(PLACES_JA)), rng.randrange(len(ACTIONS_JA))
        premise = _caption(s, p, a)
        subject, place, action = SUBJECTS_JA[s][0], PLACES_JA[p][0], ACTIONS_JA[a][0]
        kind = ('entailment', 'contradiction', 'neutral')[i % 3]
        if kind == 'entailment':
            hypothesis = rng.choice([f'{subject}が{action}います。', f'{place}に{subject}がいます。'])
        elif kind == 'contradiction':
            hypothesis = rng.choice([f'{subject}が{place}で{OPPOSITES_JA[action]}います。',
                                     f'{place}には誰もいません。'])
        else:
            hypothesis = f'{subject}が{place}で{action}いて、{rng.choice(EXTRAS_JA)}。'
        rows.append({'sentence_pair_id': str(i), 'yjcaptions_id': f'{100000 + rng.randrange(400000)}-'
                                                                   f'{rng.randrange(90000) + 10000}-g{i}',
                     'sentence1': premise, 'sentence2': hypothesis, 'label': kind})
    return rows


def marc_rows(rng: random.Random, n: int = 64) -> list[dict]:
    """Product reviews, positive or negative, with MARC-style review ids."""
    rows = []
    for i in range(n):
        product = rng.choice(PRODUCTS_JA)
        if i % 2 == 0:
            text, label = f'この{product}は{rng.choice(GOOD_JA)}。{rng.choice(GOOD_END_JA)}', 'positive'
        else:
            text, label = f'この{product}は{rng.choice(BAD_JA)}。{rng.choice(BAD_END_JA)}', 'negative'
        review_id = 'R' + ''.join(rng.choice('ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789') for _ in range(13))
        rows.append({'sentence': text, 'label': label, 'review_id': review_id})
    return rows


def commonsense_rows(rng: random.Random) -> list[dict]:
    """Each question with its answer among four other questions' answers, five options."""
    answers = [a for _, a in COMMONSENSE_JA]
    rows = []
    for i, (question, answer) in enumerate(COMMONSENSE_JA):
        options = rng.sample([a for a in answers if a != answer], 4) + [answer]
        rng.shuffle(options)
        rows.append({'q_id': i, 'question': question, **{f'choice{k}': o for k, o in enumerate(options)},
                     'label': options.index(answer)})
    return rows


def squad_doc(paragraphs: list, prefix: str, dev: bool, title_in_context: bool, first: int = 0) -> dict:
    """A SQuAD v1.1 document: one article per paragraph; JSQuAD's contexts start with the title
    and ' [SEP] '. Training questions keep their first answer, dev ones all of them."""
    data = []
    for a, (title, text, questions) in enumerate(paragraphs):
        context = f'{title} [SEP] {text}' if title_in_context else text
        qas = []
        for q, (question, answers) in enumerate(questions):
            golds = answers if dev else answers[:1]
            qas.append({'question': question, 'id': f'{prefix}{first + a}p0q{q}',
                        'answers': [{'text': g, 'answer_start': context.index(g)} for g in golds],
                        'is_impossible': False})
        data.append({'title': title, 'paragraphs': [{'qas': qas, 'context': context}]})
    return {'data': data}


def write_jglue_fixture(out_dir: str | Path) -> Path:
    """data/tasks/jglue_fixture: JGLUE's datasets/ folder, a few dozen examples per task."""
    d = Path(out_dir) / 'datasets'
    rng = random.Random(13)
    for folder, version, rows, n_train in (('jsts', '1.3', jsts_rows(rng), 48), ('jnli', '1.3', jnli_rows(rng), 48),
                                           ('marc_ja', '1.0', marc_rows(rng), 48),
                                           ('jcommonsenseqa', '1.3', commonsense_rows(rng), 40)):
        train, valid = _split(rows, n_train)
        where = d / (f'{folder}-v1.1' if folder == 'marc_ja' else f'{folder}-v{version}')
        _jsonl(where / f'train-v{version}.json', train)
        _jsonl(where / f'valid-v{version}.json', valid)
    (d / 'marc_ja-v1.2').mkdir(parents=True, exist_ok=True)
    (d / 'marc_ja-v1.2' / '.gitkeep').write_text('')
    _json(d / 'jsquad-v1.3' / 'train-v1.3.json', squad_doc(PARAGRAPHS_JA[:7], 'a', False, True, 1000))
    _json(d / 'jsquad-v1.3' / 'valid-v1.3.json', squad_doc(PARAGRAPHS_JA[7:], 'a', True, True, 2000))
    return Path(out_dir)


# ---- GLUE and SQuAD ----------------------------------------------------------------------------
def _sentence_en(s: int, a: int, p: int, syn: int = 0) -> str:
    return f'{SUBJECTS_EN[s][syn]} {ACTIONS_EN[a][syn]} {PLACES_EN[p][syn]}.'


def write_glue_fixture(out_dir: str | Path) -> Path:
    """data/tasks/glue_fixture: CoLA, SST-2, MRPC, STS-B and RTE in GLUE's files and columns."""
    d = Path(out_dir)
    rng = random.Random(17)
    # CoLA: no header; source, label, original mark, sentence (tokenised, as GLUE's)
    cola = []
    for i in range(44):
        name, (verb, obj) = rng.choice(NAMES_EN), rng.choice(VERBS_EN)
        if i % 2:
            cola.append([f'fx{i:02d}', 1, '', f'{name} {verb} {obj} .'])
        else:
            words = f'{name} {verb} {obj}'.split()
            bad = ' '.join(words[1:2] + words[:1] + words[2:]) if rng.random() < 0.5 else ' '.join(words[::-1])
            cola.append([f'fx{i:02d}', 0, '*', f'{bad} .'])
    for name, rows in zip(('train', 'dev'), _split(cola, 32)):
        _tsv(d / 'CoLA' / f'{name}.tsv', None, rows)
    # SST-2: sentence, label
    sst = []
    for i in range(44):
        good = i % 2 == 0
        sst.append([f"{rng.choice(GOOD_EN if good else BAD_EN)} {rng.choice(FILMS_EN)} .", int(good)])
    for name, rows in zip(('train', 'dev'), _split(sst, 32)):
        _tsv(d / 'SST-2' / f'{name}.tsv', ['sentence', 'label'], rows)
    # MRPC: Quality, #1 ID, #2 ID, #1 String, #2 String
    mrpc, sts, rte = [], [], []
    for i in range(44):
        s, a, p = rng.randrange(len(SUBJECTS_EN)), rng.randrange(len(ACTIONS_EN)), rng.randrange(len(PLACES_EN))
        same = i % 2 == 0
        a2 = a if same else (a + 1 + rng.randrange(len(ACTIONS_EN) - 1)) % len(ACTIONS_EN)
        mrpc.append([int(same), 100000 + 2 * i, 100001 + 2 * i, _sentence_en(s, a, p), _sentence_en(s, a2, p, 1)])
    for name, rows in zip(('train', 'dev'), _split(mrpc, 32)):
        _tsv(d / 'MRPC' / f'{name}.tsv', ['Quality', '#1 ID', '#2 ID', '#1 String', '#2 String'], rows)
    # STS-B: index, genre, filename, year, old_index, source1, source2, sentence1, sentence2, score
    for i in range(44):
        s, a, p = rng.randrange(len(SUBJECTS_EN)), rng.randrange(len(ACTIONS_EN)), rng.randrange(len(PLACES_EN))
        kind = i % 3
        if kind == 0:
            other, score = _sentence_en(s, a, p, 1), rng.uniform(4.2, 5.0)
        elif kind == 1:
            other = _sentence_en(s, (a + 1) % len(ACTIONS_EN), p, rng.randrange(2))
            score = rng.uniform(1.6, 3.2)
        else:
            other = _sentence_en((s + 1) % len(SUBJECTS_EN), (a + 2) % len(ACTIONS_EN), (p + 1) % len(PLACES_EN))
            score = rng.uniform(0.0, 0.8)
        sts.append([i, 'main-captions', 'MSRvid', '2012test', f'{i:04d}', 'none', 'none', _sentence_en(s, a, p),
                    other, f'{score:.3f}'])
    for name, rows in zip(('train', 'dev'), _split(sts, 32)):
        _tsv(d / 'STS-B' / f'{name}.tsv', ['index', 'genre', 'filename', 'year', 'old_index', 'source1', 'source2',
                                           'sentence1', 'sentence2', 'score'], rows)
    # RTE: index, sentence1, sentence2, label
    for i in range(44):
        s, a, p = rng.randrange(len(SUBJECTS_EN)), rng.randrange(len(ACTIONS_EN)), rng.randrange(len(PLACES_EN))
        premise = f'{_sentence_en(s, a, p)[:-1]} while the sun is shining.'
        if i % 2 == 0:
            hypothesis, label = f'{SUBJECTS_EN[s][0]} {ACTIONS_EN[a][0]}.', 'entailment'
        else:
            hypothesis = f'{SUBJECTS_EN[s][0]} {ACTIONS_EN[(a + 1) % len(ACTIONS_EN)][0]} {PLACES_EN[p][0]}.'
            label = 'not_entailment'
        rte.append([i, premise, hypothesis, label])
    for name, rows in zip(('train', 'dev'), _split(rte, 32)):
        _tsv(d / 'RTE' / f'{name}.tsv', ['index', 'sentence1', 'sentence2', 'label'], [[j, *r[1:]] for j, r in
                                                                                      enumerate(rows)])
    return d


def write_squad_fixture(out_dir: str | Path) -> Path:
    """data/tasks/squad_fixture: SQuAD v1.1 train and dev files (dev with several answers)."""
    d = Path(out_dir)
    _json(d / 'train-v1.1.json', {**squad_doc(PARAGRAPHS_EN[:4], 'en', False, False, 1000), 'version': '1.1'})
    _json(d / 'dev-v1.1.json', {**squad_doc(PARAGRAPHS_EN[4:] + PARAGRAPHS_EN[:1], 'en', True, False, 2000),
                                'version': '1.1'})
    return d


def write_fixtures(tasks_dir: str | Path = 'data/tasks') -> list[Path]:
    tasks_dir = Path(tasks_dir)
    return [write_jglue_fixture(tasks_dir / 'jglue_fixture'), write_glue_fixture(tasks_dir / 'glue_fixture'),
            write_squad_fixture(tasks_dir / 'squad_fixture')]


if __name__ == '__main__':
    for path in write_fixtures(sys.argv[1] if len(sys.argv) > 1 else 'data/tasks'):
        print(f'wrote {path}')
