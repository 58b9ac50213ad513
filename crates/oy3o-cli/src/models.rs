//! `oy3o models`: providers, their default models, aliases, and whether a credential is
//! configured (never the credential itself).

use oy3o::{Config, Error, ErrorCode};

/// Prints the table.
pub fn run(config: &Config) -> Result<(), Error> {
    println!("{:<10} {:<24} credential", "provider", "default model");
    for name in oy3o::providers::names() {
        let Some(provider) = oy3o::providers::find(name) else {
            continue;
        };
        let info = provider.info();
        let (model, credential) = match config.resolve(Some(name)) {
            Ok(target) => (
                target.model,
                match (&target.credential, info.key_policy) {
                    (Some(_), _) => "configured",
                    (None, _) => "not needed",
                },
            ),
            Err(e) if e.code() == ErrorCode::Auth => (info.default_model.to_owned(), "missing"),
            Err(e) => return Err(e),
        };
        println!("{name:<10} {model:<24} {credential}");
    }
    if !config.aliases.is_empty() {
        println!("\nalias      model");
        for (alias, target) in &config.aliases {
            println!("{alias:<10} {target}");
        }
    }
    Ok(())
}
