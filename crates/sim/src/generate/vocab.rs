//! Word lists for synthetic profiles and indicators. All names are invented; domains and
//! addresses come from reserved names and ranges (see `values.rs`).

/// Microsoft's weather-themed actor families, with the country each one stands for.
/// `None`: financially motivated groups with no attributed origin.
pub const FAMILIES: &[(&str, Option<(&str, &str)>)] = &[
    ("Blizzard", Some(("Russia", "RU"))),
    ("Typhoon", Some(("China", "CN"))),
    ("Sandstorm", Some(("Iran", "IR"))),
    ("Sleet", Some(("North Korea", "KP"))),
    ("Dust", Some(("Türkiye", "TR"))),
    ("Hail", Some(("South Korea", "KR"))),
    ("Cyclone", Some(("Vietnam", "VN"))),
    ("Rain", Some(("Lebanon", "LB"))),
    ("Tempest", None),
    ("Flood", None),
];

pub const ACTOR_ADJECTIVES: &[&str] = &[
    "Aqua", "Cadet", "Forest", "Midnight", "Seashell", "Star", "Volt", "Silk", "Salt", "Brass",
    "Flax", "Granite", "Charcoal", "Cotton", "Mint", "Peach", "Pumpkin", "Crimson", "Diamond",
    "Emerald", "Jade", "Onyx", "Ruby", "Sapphire", "Lace", "Octo", "Manatee", "Caramel",
    "Cinnamon", "Citrine", "Coral", "Denim", "Ember", "Garnet", "Hazel", "Indigo", "Ivory",
    "Lilac", "Marble", "Mulberry", "Nickel", "Opal", "Pearl", "Quartz", "Saffron", "Sienna",
    "Slate", "Tin", "Umber", "Velvet",
];

/// Old element-style names used as aliases (`ACTINIUM`-like).
pub const ELEMENT_ALIASES: &[&str] = &[
    "ACTINIUM",
    "BARIUM",
    "CERIUM",
    "DUBNIUM",
    "EUROPIUM",
    "GALLIUM",
    "HAFNIUM",
    "IRIDIUM",
    "KRYPTON",
    "LANTHANUM",
    "MERCURY",
    "NEODYMIUM",
    "OSMIUM",
    "PLUTONIUM",
    "RHODIUM",
    "STRONTIUM",
    "TERBIUM",
    "URANIUM",
    "VANADIUM",
    "XENON",
    "YTTRIUM",
    "ZINC",
    "BISMUTH",
    "COBALT",
    "POLONIUM",
    "THALLIUM",
];

pub const ANIMAL_ADJECTIVES: &[&str] = &[
    "Frosty", "Wicked", "Fancy", "Velvet", "Silent", "Hidden", "Crafty", "Static", "Lucky",
    "Mystic", "Rogue", "Shadow", "Iron", "Copper", "Golden",
];

pub const ANIMALS: &[&str] = &[
    "Marten", "Panda", "Bear", "Kitten", "Chollima", "Spider", "Jackal", "Falcon", "Viper", "Lynx",
    "Badger", "Heron", "Otter", "Mantis", "Raven",
];

pub const TOOL_PREFIXES: &[&str] = &[
    "Quarry", "Night", "Glass", "Shadow", "Iron", "Paper", "Hollow", "Silver", "Thunder", "Echo",
    "Drift", "Cobalt", "Ember", "Frost", "Lantern", "Mosaic", "Needle", "Orbit", "Prism", "Relic",
    "Signal", "Tundra", "Vortex", "Whisper",
];

pub const TOOL_SUFFIXES: &[&str] = &[
    "RAT", "Loader", "Stealer", "Wiper", "Dropper", "Backdoor", "Beacon", "Kit", "Miner", "Locker",
    "Shell", "Bot",
];

/// What each tool suffix stands for.
pub const TOOL_KINDS: &[(&str, &str)] = &[
    ("RAT", "remote access trojan"),
    ("Loader", "modular loader"),
    ("Stealer", "information stealer"),
    ("Wiper", "destructive wiper"),
    ("Dropper", "first-stage dropper"),
    ("Backdoor", "backdoor"),
    ("Beacon", "post-exploitation implant"),
    ("Kit", "credential harvesting kit"),
    ("Miner", "cryptocurrency miner"),
    ("Locker", "ransomware family"),
    ("Shell", "web shell"),
    ("Bot", "botnet malware"),
];

/// Target strings in MDTI's `Sector: Subsector` style.
pub const TARGETS: &[&str] = &[
    "Government Agencies & Services: Defense",
    "Government Agencies & Services: Law Enforcement",
    "Government Agencies & Services: Local Government",
    "Government Agencies & Services: Regional Government",
    "Government Agencies & Services: Diplomacy",
    "Government Agencies & Services: Emergency Services",
    "Non-Government Organization: Human Rights Organization",
    "Non-Government Organization: Think Tank",
    "Financial Services: Banking",
    "Financial Services: Insurance",
    "Financial Services: Cryptocurrency",
    "Energy: Oil and Gas",
    "Energy: Nuclear",
    "Utilities: Water",
    "Healthcare: Hospitals",
    "Healthcare: Pharmaceuticals",
    "IT: Telecommunications",
    "IT: Software",
    "IT: Managed Service Providers",
    "Education: Higher Education",
    "Media: News",
    "Transportation: Maritime",
    "Transportation: Aviation",
    "Manufacturing: Automotive",
    "Defense Industrial Base: Aerospace",
    "Retail: E-commerce",
];

/// Extra origins for tools and developing (`Storm-####`) groups.
pub const COUNTRIES: &[(&str, &str)] = &[
    ("Russia", "RU"),
    ("China", "CN"),
    ("Iran", "IR"),
    ("North Korea", "KP"),
    ("Belarus", "BY"),
    ("Pakistan", "PK"),
    ("India", "IN"),
    ("Brazil", "BR"),
    ("Nigeria", "NG"),
    ("Ukraine", "UA"),
];

pub const TECHNIQUES: &[(&str, &str)] = &[
    ("T1566.001", "Spearphishing Attachment"),
    ("T1566.002", "Spearphishing Link"),
    ("T1190", "Exploit Public-Facing Application"),
    ("T1133", "External Remote Services"),
    ("T1078", "Valid Accounts"),
    ("T1059.001", "PowerShell"),
    ("T1047", "Windows Management Instrumentation"),
    ("T1053.005", "Scheduled Task"),
    ("T1547.001", "Registry Run Keys / Startup Folder"),
    ("T1003.001", "LSASS Memory"),
    ("T1021.001", "Remote Desktop Protocol"),
    ("T1071.001", "Web Protocols"),
    ("T1105", "Ingress Tool Transfer"),
    ("T1486", "Data Encrypted for Impact"),
    ("T1567.002", "Exfiltration to Cloud Storage"),
];

/// Words for host labels, URL paths and mailbox names.
pub const WORDS: &[&str] = &[
    "update",
    "check",
    "cdn",
    "sync",
    "login",
    "portal",
    "secure",
    "mail",
    "api",
    "telemetry",
    "cloud",
    "files",
    "docs",
    "share",
    "auth",
    "account",
    "verify",
    "support",
    "static",
    "assets",
    "media",
    "news",
    "office",
    "online",
    "service",
    "status",
    "time",
    "track",
    "data",
    "backup",
    "drive",
    "web",
    "app",
    "client",
    "edge",
    "node",
    "relay",
    "proxy",
    "gate",
    "hub",
];

pub const FIRST_NAMES: &[&str] = &[
    "alex", "maria", "sam", "li", "noor", "omar", "anna", "ivan", "sofia", "kim", "lena", "jon",
    "ravi", "yuki", "ines",
];

pub const LAST_NAMES: &[&str] = &[
    "smith", "novak", "chen", "haddad", "petrov", "garcia", "kowalski", "tanaka", "okafor",
    "larsen", "meyer", "silva", "park", "rossi",
];

pub const FILE_NAMES: &[&str] = &[
    "invoice",
    "report",
    "update",
    "setup",
    "payload",
    "document",
    "statement",
    "resume",
    "agenda",
    "policy",
];

pub const FILE_EXTENSIONS: &[&str] = &[
    "zip", "exe", "dll", "js", "hta", "iso", "docm", "lnk", "ps1",
];

pub const REGISTRARS: &[&str] = &[
    "Example Registrar, Inc.",
    "Test Domains LLC",
    "Reserved Names Registry Ltd.",
    "Sample Registrar GmbH",
];

pub const HOSTING_PROVIDERS: &[&str] = &[
    "Example Hosting",
    "Documentation Networks",
    "Test Cloud Services",
    "Benchmark Transit",
];

pub const COMPONENTS: &[(&str, &str)] = &[
    ("Server", "nginx"),
    ("Server", "Microsoft-IIS"),
    ("Framework", "PHP"),
    ("Operating System", "Ubuntu"),
    ("Remote Access", "OpenSSH"),
];

pub const COOKIES: &[&str] = &[
    "JSESSIONID",
    "PHPSESSID",
    "OIDC",
    "session",
    "ASP.NET_SessionId",
];

pub const TRACKERS: &[&str] = &[
    "GoogleAnalyticsID",
    "JarmHash",
    "ContosoId",
    "FacebookPixelId",
];
