// The forms a password takes in a PostgreSQL URL, which every place that shows a URL must redact: a query parameter
// (`password=`, `sslpassword=`), and a userinfo password with an unencoded @ followed by a character that ends a
// URL's authority (#, / or ?), where a URL parser would cut the password short and take the rest for the host.
/** Each form with `secret` in the password, and the URL as it must be shown: `[form, url, shown]`. */
export function passwordUrlForms(secret: string): Array<[form: string, url: string, shown: string]> {
  return [
    ["?password=", `postgresql://u@db.example/app?password=${secret}`, "postgresql://u@db.example/app?password=***"],
    [
      "sslpassword=",
      `postgresql://u@db.example/app?sslmode=require&sslpassword=${secret}`,
      "postgresql://u@db.example/app?sslmode=require&sslpassword=***",
    ],
    ["an unencoded @ then #", `postgresql://u:x@${secret}#t@db.example/app`, "postgresql://u:***@db.example/app"],
    ["an unencoded @ then /", `postgresql://u:x@${secret}/t@db.example/app`, "postgresql://u:***@db.example/app"],
    ["an unencoded @ then ?", `postgresql://u:x@${secret}?t@db.example/app`, "postgresql://u:***@db.example/app"],
  ];
}
