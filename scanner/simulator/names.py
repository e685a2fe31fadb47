"""Name, department and job-title pools for generated background users (plain data, no logic)."""

FIRST_NAMES = (
    "Aaron Abigail Adam Adrian Aisha Alan Alberto Alejandro Alex Alexandra Alice Alicia Amanda Amelia Amir Amy Ana "
    "Andre Andrea Andrew Angela Anita Ann Anna Anthony Antonio Arjun Ashley Barbara Ben Benjamin Beth Bianca Brandon "
    "Brian Bruno Caitlin Camila Carl Carlos Carmen Caroline Catherine Chen Chloe Chris Christian Christina Claire "
    "Claudia Colin Connor Craig Cristina Daniel Daniela David Deborah Deepak Denise Diana Diego Dmitri Dorothy Duncan "
    "Edward Elena Eli Elizabeth Ella Emily Emma Eric Erik Esther Ethan Eva Fatima Felix Fernando Fiona Francesca "
    "Francisco Gabriel Gabriela Gary George Grace Greg Hannah Hao Harper Hassan Heather Helen Henry Hiroshi Hugo "
    "Ian Ingrid Isabel Isaac Ivan Jack Jacob James Jamie Jan Jane Janet Jason Javier Jennifer Jessica Jin Joan "
    "Joanna Joe John Jonas Jorge Jose Joseph Joshua Juan Julia Julian Karen Karim Kate Katherine Kenji Kevin Kim "
    "Laura Lauren Leah Lena Leo Liam Lily Linda Lisa Lucas Lucia Luis Maja Manuel Marco Margaret Maria Mark Marta "
    "Martin Mary Mateo Matthew Maya Mei Michael Michelle Miguel Mohammed Monica Nadia Natalie Nathan Nicole Nina "
    "Noah Olga Oliver Olivia Omar Oscar Pablo Paolo Patricia Patrick Paul Paula Pedro Peter Philip Pooja Priya "
    "Rachel Rafael Rahul Raj Rebecca Ricardo Richard Robert Rosa Ryan Sakura Samuel Sandra Sara Sarah Scott Sean "
    "Sergio Simon Sofia Sophie Stefan Stephanie Steven Susan Takeshi Tanya Thomas Tim Tom Tomas Valentina Victor "
    "Victoria Vikram Wei William Xavier Yara Yusuf Zoe"
).split()

LAST_NAMES = (
    "Abbott Acosta Adams Ahmed Alvarez Anderson Andersson Bailey Baker Barnes Becker Bell Bennett Berg Bianchi "
    "Brooks Brown Bruno Butler Campbell Carter Castillo Chan Chavez Chen Clark Collins Cook Cooper Costa Cox Cruz "
    "Dahl Davies Davis Diaz Dubois Edwards Evans Fischer Fisher Flores Foster Garcia Gomez Gonzalez Gray Green "
    "Griffin Gupta Hall Hansen Harris Hayes Hernandez Hill Hoffmann Howard Hughes Ito Jackson James Jansen Jensen "
    "Johansson Johnson Jones Kelly Khan Kim Klein Koch Kowalski Kumar Larsen Laurent Lee Lewis Li Lindqvist Liu "
    "Lopez Martin Martinez Meyer Miller Mitchell Moore Morales Morgan Morris Muller Murphy Murray Nakamura Nelson "
    "Nguyen Nielsen Novak Olsen Ortiz Park Parker Patel Perez Perry Peterson Petrov Phillips Powell Price Ramirez "
    "Reed Reyes Richardson Rivera Roberts Robinson Rodriguez Rogers Romero Rossi Ruiz Russell Sanchez Sanders Sato "
    "Schmidt Schneider Scott Shah Silva Singh Smith Sousa Stewart Sullivan Suzuki Tanaka Taylor Thomas Thompson "
    "Torres Turner Walker Wang Ward Watson Weber Williams Wilson Wood Wright Wu Yamamoto Yang Young Zhang Zimmermann"
).split()

# department -> job titles (weighted by repetition)
DEPARTMENTS = {
    "Sales": ["Account Executive", "Account Executive", "Sales Associate", "Sales Manager", "Sales Engineer"],
    "Marketing": ["Marketing Specialist", "Content Strategist", "Marketing Manager", "Event Coordinator"],
    "Finance": ["Accountant", "Financial Analyst", "Accounts Payable Clerk", "Controller", "Payroll Specialist"],
    "Human Resources": ["HR Generalist", "Recruiter", "HR Business Partner", "Talent Acquisition Specialist"],
    "Engineering": ["Software Engineer", "Software Engineer", "Senior Software Engineer", "QA Engineer",
                    "Engineering Manager", "DevOps Engineer"],
    "IT": ["IT Support Specialist", "Systems Administrator", "Network Engineer", "Service Desk Analyst"],
    "Operations": ["Operations Analyst", "Logistics Coordinator", "Operations Manager", "Facilities Coordinator"],
    "Customer Support": ["Support Agent", "Support Agent", "Customer Success Manager", "Support Team Lead"],
    "Legal": ["Paralegal", "Corporate Counsel", "Contracts Manager"],
    "Product": ["Product Manager", "UX Designer", "Product Owner"],
}
DEPARTMENT_NAMES = tuple(DEPARTMENTS)

OFFICES = ("Seattle", "Redmond", "New York", "Chicago", "Dallas", "London", "Dublin", "Munich", "Paris", "Amsterdam")
EU_OFFICES = frozenset({"London", "Dublin", "Munich", "Paris", "Amsterdam"})

SHARED_MAILBOXES = ("Accounts Payable", "Sales Inbox", "Recruiting", "Marketing Team", "Facilities", "Events",
                    "Press", "Info", "Billing", "Support Team", "Legal Notices", "Procurement")
ROOMS = ("Conf Room Rainier", "Conf Room Baker", "Conf Room Adams", "Conf Room Hood", "Conf Room Olympus",
         "Conf Room Stuart", "Conf Room Crystal", "Board Room", "Focus Room 1", "Focus Room 2")

GUEST_DOMAINS = ("gmail.com", "outlook.com", "fabrikam.com", "northwindtraders.com", "adatum.com", "litware.com")

PHONE_PREFIXES = {"Seattle": "+1 206", "Redmond": "+1 425", "New York": "+1 212", "Chicago": "+1 312",
                  "Dallas": "+1 214", "London": "+44 20", "Dublin": "+353 1", "Munich": "+49 89", "Paris": "+33 1",
                  "Amsterdam": "+31 20"}

DEVICES = ("iPhone 13", "iPhone 14", "iPhone 15", "iPhone 15 Pro", "Pixel 7", "Pixel 8", "Galaxy S23", "Galaxy S22",
           "SM-G991B", "OnePlus 11")

NEWSLETTER_SENDERS = (("Harvard Business Review", "newsletters@hbr.org"), ("The Information", "hello@theinformation.com"),
                      ("Morning Brew", "crew@morningbrew.com"), ("LinkedIn", "messages-noreply@linkedin.com"),
                      ("Stack Overflow", "do-not-reply@stackoverflow.email"))
CI_SENDERS = (("GitHub", "notifications@github.com"), ("Jira", "jira@contoso.atlassian.net"),
              ("Azure DevOps", "azuredevops@microsoft.com"), ("PagerDuty", "no-reply@pagerduty.com"))
