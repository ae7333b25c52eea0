//! The page: one HTML file holding its data, style and script. It loads nothing: a Content
//! Security Policy forbids every request, so a page that tried would show it as an error.

use crate::model::Timeline;

const SCRIPT: &str = include_str!("../assets/timeline.js");
const STYLE: &str = include_str!("../assets/timeline.css");

/// The id of the `<script type="application/json">` element holding the timelines.
pub const DATA_ID: &str = "timeline-data";

/// One self-contained page drawing `timelines` one under the other (two for a what-if).
pub fn render(title: &str, timelines: &[Timeline]) -> Result<String, serde_json::Error> {
    let data = embed_json(&serde_json::to_string(timelines)?);
    let mut page = String::with_capacity(data.len() + SCRIPT.len() + STYLE.len() + 4096);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         script-src 'unsafe-inline'; style-src 'unsafe-inline'\">\n",
    );
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    page.push_str(&format!("<title>{}</title>\n", escape(title)));
    page.push_str(&format!("<style>\n{STYLE}</style>\n</head>\n<body>\n"));
    page.push_str(&format!("<header><h1>{}</h1>\n", escape(title)));
    page.push_str(LEGEND);
    page.push_str("</header>\n<div class=\"page\"><main id=\"app\"></main>");
    page.push_str("<aside id=\"detail\">Click a record for its details.</aside></div>\n<div id=\"tip\" hidden></div>\n");
    page.push_str(&format!(
        "<script type=\"application/json\" id=\"{DATA_ID}\">{data}</script>\n"
    ));
    page.push_str(&format!("<script>\n{SCRIPT}</script>\n</body>\n</html>\n"));
    Ok(page)
}

const LEGEND: &str = "<div class=\"legend\">\
<span><i style=\"background:hsl(200,62%,45%)\"></i>master (its colour is its slots' colour)</span>\
<span><i style=\"background:hsl(200,55%,78%)\"></i>replica (its master's colour, lighter)</span>\
<span><i style=\"background:#c0392b\"></i>stopped</span>\
<span><i style=\"background:#e67e22\"></i>running, not answering</span>\
<span><i style=\"background:#b71c1c;height:3px\"></i>flagged fail by another node</span>\
<span><i style=\"background:repeating-linear-gradient(45deg,#fff 0 2px,#e57373 2px 4px)\"></i>slots no master serves</span>\
<span><i style=\"background:#ffb300\"></i>slots open (migration in flight)</span>\
<span><i style=\"background:#111;width:4px\"></i>effect decided on the node</span>\
</div>\n";

/// JSON inside a `<script>` element: `<` written as `\u003c`, so no `</script>` or `<!--` in
/// a summary or error text can end the element early. Outside strings JSON has no `<`.
fn embed_json(json: &str) -> String {
    json.replace('<', "\\u003c")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The timelines embedded in a page written by [`render`] (for tests and tools).
pub fn embedded(page: &str) -> Option<&str> {
    let open = format!("<script type=\"application/json\" id=\"{DATA_ID}\">");
    let start = page.find(&open)? + open.len();
    let len = page.get(start..)?.find("</script>")?;
    page.get(start..start + len)
}
