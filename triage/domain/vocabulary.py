"""The codes patients and nurses answer with: symptoms, chronic conditions, needs, exposures.

Labels are plain words a patient understands, Simplified Chinese first; a hint adds an example where a
word alone could mislead. Each symptom says whether it counts on the fever-clinic infection screen and
whether it is a red flag at the online stage ("go to the emergency department now / call 120").
Published as JSON at GET /api/v1/vocabulary by `vocabulary_document()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Symptom:
    """A symptom code with its labels and clinical roles."""

    code: str
    zh: str
    en: str
    hint_zh: str = ""
    hint_en: str = ""
    # On the fever-clinic list (notice 141 §4; the COVID-19 guideline's common symptoms).
    infection: bool = False
    # Online stage: declaring it sends the patient to the emergency department now, without a slot.
    red_flag: bool = False
    # Red flag only in a pregnant patient (bleeding or contractions: miscarriage, ectopic, labour).
    red_flag_in_pregnancy: bool = False
    # Needs hands-on care (examination, dressing, imaging): cannot be served by online follow-up.
    hands_on: bool = False
    # Only possible in a female patient: given for a male, the input is inconsistent.
    female_only: bool = False


# Red flags (online) are the symptoms that meet a level 1-2 criterion on their own, because waiting for
# a booked slot could cost a life or a brain: arrest, seizure, chest pain (an ECG within 10 minutes, as
# chest-pain centres require), severe breathlessness, stroke signs (thrombolysis is time-limited),
# fainting (arrhythmia cannot be excluded without an ECG), vomiting blood or heavy bleeding, poisoning,
# labour contractions. Vaginal bleeding is a red flag in pregnancy only (miscarriage, ectopic pregnancy).
# Two level-3 symptoms are red flags too: suicidal thoughts (a crisis is not booked days ahead) and new
# confusion (stroke, low sugar or sepsis until proven otherwise).
SYMPTOMS: tuple[Symptom, ...] = (
    # Infection screen (fever-clinic criteria).
    Symptom("fever", "发热", "Fever", "自己量过体温偏高，或感觉发烧", "A high temperature, measured or felt",
            infection=True),
    Symptom("dry_cough", "干咳", "Dry cough", "咳嗽但没有痰", "Coughing without phlegm", infection=True),
    Symptom("cough", "咳嗽", "Cough", infection=True),
    Symptom("fatigue", "乏力", "Tiredness", "比平时明显没力气", "Much weaker or more tired than usual",
            infection=True),
    Symptom("sore_throat", "咽痛", "Sore throat", infection=True),
    Symptom("nasal_congestion", "鼻塞", "Blocked nose", infection=True),
    Symptom("runny_nose", "流鼻涕", "Runny nose", infection=True),
    Symptom("loss_smell_taste", "嗅觉或味觉减退", "Loss of smell or taste", infection=True),
    Symptom("conjunctivitis", "眼睛发红、分泌物多（结膜炎）", "Red, sticky eyes (conjunctivitis)",
            infection=True),
    Symptom("myalgia", "全身肌肉酸痛", "Aching muscles all over", infection=True),
    Symptom("diarrhoea", "腹泻", "Diarrhoea", "一天稀便三次或以上", "Loose stools three or more times a day",
            infection=True),
    # Danger signs.
    Symptom("cardiac_arrest", "心跳呼吸骤停", "Not breathing, no pulse (cardiac arrest)",
            "请立即拨打120并开始心肺复苏", "Call 120 and start CPR now", red_flag=True),
    Symptom("seizure", "正在抽搐", "Fitting now (seizure)", "抽搐正在发生或刚刚发生、还没醒",
            "Fitting now, or just stopped and not yet awake", red_flag=True),
    Symptom("chest_pain", "胸痛或胸口压榨感", "Chest pain or pressure", red_flag=True),
    Symptom("dyspnoea", "严重呼吸困难", "Severe breathlessness", "喘不上气，说不了完整的句子",
            "Struggling to breathe, cannot finish a sentence", red_flag=True),
    Symptom("wheeze", "喘鸣（呼吸时有哨音）", "Wheezing", "呼吸时胸口有哨音，如哮喘发作",
            "A whistling sound when breathing, as in an asthma attack"),
    Symptom("syncope", "晕厥", "Fainted", "突然倒下、短暂失去知觉", "Suddenly collapsed and passed out briefly",
            red_flag=True),
    Symptom("confusion", "突然糊涂、意识混乱", "New confusion", "突然说话颠三倒四、认不清人或地方",
            "Suddenly muddled, not knowing people or places", red_flag=True),
    Symptom("unilateral_weakness", "一侧手脚无力或麻木", "Weakness or numbness on one side",
            red_flag=True),
    Symptom("facial_droop", "口角歪斜", "Face drooping on one side", red_flag=True),
    Symptom("slurred_speech", "突然说话不清", "Sudden slurred speech", red_flag=True),
    Symptom("headache", "头痛", "Headache"),
    Symptom("dizziness", "头晕", "Dizziness"),
    Symptom("palpitations", "心慌、心跳乱", "Heart racing or fluttering"),
    Symptom("diaphoresis", "大汗淋漓", "Heavy sweating", "没有运动却出很多汗、冷汗",
            "Sweating a lot without exertion, cold sweat"),
    Symptom("haematemesis", "呕血", "Vomiting blood", "吐出鲜血或咖啡色东西",
            "Vomit with blood or what looks like coffee grounds", red_flag=True, hands_on=True),
    Symptom("heavy_bleeding", "大量出血、止不住", "Heavy bleeding that will not stop", red_flag=True,
            hands_on=True),
    Symptom("poisoning", "误服药物或毒物", "Overdose or poisoning", "吃了过量药物、农药或其他有毒物质",
            "Took too much medicine, pesticide or another poison", red_flag=True),
    Symptom("vomiting", "呕吐", "Vomiting"),
    Symptom("abdominal_pain", "腹痛", "Tummy pain (abdominal pain)"),
    Symptom("epigastric_discomfort", "胃部不适", "Upper tummy discomfort", "上腹部胀、烧心、隐痛",
            "Bloating, heartburn or a dull ache below the ribs"),
    Symptom("flank_pain", "腰部一侧疼痛", "Pain in one side of the lower back (flank)"),
    Symptom("back_pain", "背痛", "Back pain"),
    Symptom("vaginal_bleeding", "阴道出血", "Vaginal bleeding", red_flag_in_pregnancy=True, hands_on=True,
            female_only=True),
    Symptom("contractions", "宫缩（规律腹痛、发紧）", "Labour contractions", "孕期规律的腹部发紧或疼痛",
            "Regular tightening or pain of the belly in pregnancy", red_flag=True, hands_on=True,
            female_only=True),
    # Injuries.
    Symptom("limb_injury", "手脚受伤（扭伤、碰伤）", "Injured arm or leg (sprain, bruise)", hands_on=True),
    Symptom("limb_deformity", "手脚变形（可能骨折）", "Arm or leg looks bent (possible broken bone)",
            hands_on=True),
    Symptom("head_injury", "头部受伤", "Head injury", hands_on=True),
    Symptom("laceration", "伤口、割伤", "Cut or wound", hands_on=True),
    # Mind and sleep.
    Symptom("suicidal_ideation", "有轻生或伤害自己的念头", "Thoughts of ending your life or harming yourself",
            "您并不孤单，可以立即获得帮助", "You are not alone; help is available now", red_flag=True),
    Symptom("low_mood", "情绪低落", "Low mood"),
    Symptom("insomnia", "失眠", "Trouble sleeping"),
    # Other.
    Symptom("skin_rash", "皮疹", "Skin rash"),
    Symptom("eye_irritation", "眼睛不适或异物感", "Eye discomfort or something in the eye"),
    Symptom("ear_pain", "耳朵痛", "Earache"),
    Symptom("blurred_vision", "视物模糊", "Blurred vision"),
)


@dataclass(frozen=True)
class Condition:
    """A chronic condition code with its labels and the priority group it puts a patient in."""

    code: str
    zh: str
    en: str
    # Priority flag the condition implies (notice 141 §3, 004 §3.3), if any.
    priority: str | None = None


# Psychiatric illness for priority (notice 004 §3.3 "精神类疾病"): the severe mental disorders the
# national programme follows (schizophrenia, bipolar disorder; 严重精神障碍管理治疗工作规范 2018) and
# depression, because 004 names psychiatric illness broadly, together with patients on long-term
# psychotropic drugs (精神药品). Epilepsy is a neurological condition and does not count.
CONDITIONS: tuple[Condition, ...] = (
    Condition("hypertension", "高血压", "High blood pressure"),
    Condition("type2_diabetes", "2型糖尿病", "Type 2 diabetes"),
    Condition("type1_diabetes", "1型糖尿病", "Type 1 diabetes"),
    Condition("coronary_heart_disease", "冠心病", "Coronary heart disease"),
    Condition("heart_failure", "心力衰竭", "Heart failure"),
    Condition("copd", "慢阻肺（慢性阻塞性肺疾病）", "COPD (chronic lung disease)"),
    Condition("asthma", "哮喘", "Asthma"),
    Condition("ckd", "慢性肾病", "Chronic kidney disease"),
    Condition("esrd_haemodialysis", "尿毒症、规律血液透析", "Kidney failure on haemodialysis",
              priority="dialysis"),
    Condition("cancer", "肿瘤", "Cancer"),
    Condition("hiv", "艾滋病病毒感染", "HIV"),
    Condition("tuberculosis", "结核病", "Tuberculosis (TB)"),
    Condition("hepatitis_b", "乙肝", "Hepatitis B"),
    Condition("hepatitis_c", "丙肝", "Hepatitis C"),
    Condition("cirrhosis", "肝硬化", "Cirrhosis of the liver"),
    Condition("schizophrenia", "精神分裂症", "Schizophrenia", priority="psychiatric"),
    Condition("bipolar_disorder", "双相情感障碍", "Bipolar disorder", priority="psychiatric"),
    Condition("depression", "抑郁症", "Depression", priority="psychiatric"),
    Condition("epilepsy", "癫痫", "Epilepsy"),
    Condition("hypothyroidism", "甲状腺功能减退", "Underactive thyroid"),
    Condition("chronic_gastritis", "慢性胃炎", "Chronic gastritis"),
    Condition("eczema", "湿疹", "Eczema"),
)


@dataclass(frozen=True)
class Need:
    """A reason for the visit that is not a symptom."""

    code: str
    zh: str
    en: str
    # A stable chronic need routes to chronic care (notice 141 §3, 004 §3.3).
    chronic: bool = False
    # Can be met without coming in (online follow-up, drug delivery: 162 §5, 004 §3.2).
    online_servable: bool = False
    priority: str | None = None
    female_only: bool = False


NEEDS: tuple[Need, ...] = (
    Need("prescription_refill", "开常用药（续方）", "Repeat prescription of my usual medicines",
         chronic=True, online_servable=True),
    Need("dialysis", "血液透析", "Dialysis session", chronic=True, priority="dialysis"),
    Need("chemotherapy", "化疗", "Chemotherapy", chronic=True, priority="chemo_radiotherapy"),
    Need("radiotherapy", "放疗", "Radiotherapy", chronic=True, priority="chemo_radiotherapy"),
    Need("antenatal_check", "产前检查", "Pregnancy check-up", priority="pregnant", female_only=True),
    # Narcotic and psychotropic drugs are dispensed to the patient in person (004 §3.3 names them).
    Need("special_drugs", "长期用药（含麻醉药品、精神药品等特殊药品）",
         "Long-term medicines, including narcotic or psychotropic drugs", chronic=True, priority="special_drugs"),
)


@dataclass(frozen=True)
class Exposure:
    """An epidemiological question; a yes is a fever-clinic trigger."""

    code: str
    rule: str
    zh: str
    en: str


# "{days}" is the policy's exposure window; the codes keep "14d" because the contract names them so.
EXPOSURES: tuple[Exposure, ...] = (
    Exposure("mid_high_risk_area_14d", "INF-EPI-AREA", "近{days}天内到过或住在中、高风险地区",
             "In the last {days} days, stayed in or visited a medium- or high-risk area"),
    Exposure("contact_case_14d", "INF-EPI-CONTACT", "近{days}天内接触过确诊病例或无症状感染者",
             "In the last {days} days, had contact with a confirmed case or an infected person without symptoms"),
    Exposure("contact_febrile_from_case_community_14d", "INF-EPI-FEBRILE-CONTACT",
             "近{days}天内接触过来自有病例社区的发热或有呼吸道症状的人",
             "In the last {days} days, had contact with someone with fever or cough from a community with cases"),
    Exposure("cluster_14d", "INF-EPI-CLUSTER", "近{days}天内家里、单位或班级出现2例及以上发热或呼吸道症状病例",
             "In the last {days} days, two or more people at home, work or in class fell ill with fever or cough"),
)

SYMPTOM_BY_CODE: dict[str, Symptom] = {s.code: s for s in SYMPTOMS}
CONDITION_BY_CODE: dict[str, Condition] = {c.code: c for c in CONDITIONS}
NEED_BY_CODE: dict[str, Need] = {n.code: n for n in NEEDS}
EXPOSURE_BY_CODE: dict[str, Exposure] = {e.code: e for e in EXPOSURES}

INFECTION_SYMPTOMS: frozenset[str] = frozenset(s.code for s in SYMPTOMS if s.infection)
RED_FLAG_SYMPTOMS: frozenset[str] = frozenset(s.code for s in SYMPTOMS if s.red_flag)
HANDS_ON_SYMPTOMS: frozenset[str] = frozenset(s.code for s in SYMPTOMS if s.hands_on)
FEMALE_ONLY: frozenset[str] = frozenset(
    [s.code for s in SYMPTOMS if s.female_only] + [n.code for n in NEEDS if n.female_only])
CHRONIC_NEEDS: frozenset[str] = frozenset(n.code for n in NEEDS if n.chronic)
ONLINE_SERVABLE_NEEDS: frozenset[str] = frozenset(n.code for n in NEEDS if n.online_servable)

PRIORITY_FLAGS: tuple[str, ...] = (
    "pregnant", "newborn", "child", "elderly", "dialysis", "chemo_radiotherapy", "psychiatric", "special_drugs",
)


def label(code: str, lang: str) -> str:
    """The label of a symptom, condition or need code in the given language (the code if unknown)."""
    item = SYMPTOM_BY_CODE.get(code) or CONDITION_BY_CODE.get(code) or NEED_BY_CODE.get(code)
    if item is None:
        return code
    return item.en if lang == "en" else item.zh


def vocabulary_document(window_days: int = 14) -> dict[str, Any]:
    """The JSON body of GET /api/v1/vocabulary: every code with Chinese and English labels."""
    return {
        "symptoms": [
            {"code": s.code, "zh": s.zh, "en": s.en, "hint_zh": s.hint_zh, "hint_en": s.hint_en,
             "infection_screen": s.infection, "red_flag": s.red_flag,
             "red_flag_in_pregnancy": s.red_flag_in_pregnancy}
            for s in SYMPTOMS
        ],
        "chronic_conditions": [
            {"code": c.code, "zh": c.zh, "en": c.en, "priority": c.priority} for c in CONDITIONS
        ],
        "needs": [
            {"code": n.code, "zh": n.zh, "en": n.en, "chronic": n.chronic,
             "online_servable": n.online_servable, "priority": n.priority}
            for n in NEEDS
        ],
        "epi": [
            {"code": e.code, "zh": e.zh.format(days=window_days), "en": e.en.format(days=window_days)}
            for e in EXPOSURES
        ],
    }
