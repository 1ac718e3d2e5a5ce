//! The macro's grammar: `[attrs] [vis] mod NAME { key: value, ... }`.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Ident, LitStr, Token, Visibility, braced, bracketed};

/// A value in the inline form: what YAML would give for the same text.
#[derive(Debug, Clone)]
pub enum Value {
    /// An integer literal.
    Int(u64, Span),
    /// `true` or `false`.
    Bool(bool, Span),
    /// A bare word (`basic`, `layer4`).
    Word(String, Span),
    /// A string literal.
    Str(String, Span),
    /// `[a, b, ...]`.
    List(Vec<Value>, Span),
}

impl Value {
    pub fn span(&self) -> Span {
        match self {
            Value::Int(_, s)
            | Value::Bool(_, s)
            | Value::Word(_, s)
            | Value::Str(_, s)
            | Value::List(_, s) => *s,
        }
    }
}

/// One `key: value` entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: Ident,
    pub value: Value,
}

/// The whole macro input.
pub struct ModelInput {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub entries: Vec<Entry>,
}

impl Parse for ModelInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        input.parse::<Token![mod]>()?;
        let name: Ident = input.parse()?;
        let body;
        braced!(body in input);
        let mut entries = Vec::new();
        while !body.is_empty() {
            let key = body.call(Ident::parse_any)?;
            body.parse::<Token![:]>()?;
            let value = parse_value(&body)?;
            entries.push(Entry { key, value });
            if body.is_empty() {
                break;
            }
            body.parse::<Token![,]>()?;
        }
        if !input.is_empty() {
            return Err(input.error("expected one `mod NAME { ... }`"));
        }
        Ok(ModelInput {
            attrs,
            vis,
            name,
            entries,
        })
    }
}

fn parse_value(input: ParseStream<'_>) -> syn::Result<Value> {
    let lookahead = input.lookahead1();
    if lookahead.peek(syn::token::Bracket) {
        let content;
        let bracket = bracketed!(content in input);
        let mut items = Vec::new();
        while !content.is_empty() {
            items.push(parse_value(&content)?);
            if content.is_empty() {
                break;
            }
            content.parse::<Token![,]>()?;
        }
        Ok(Value::List(items, bracket.span.join()))
    } else if lookahead.peek(syn::LitInt) {
        let lit: syn::LitInt = input.parse()?;
        Ok(Value::Int(lit.base10_parse()?, lit.span()))
    } else if lookahead.peek(syn::LitBool) {
        let lit: syn::LitBool = input.parse()?;
        Ok(Value::Bool(lit.value, lit.span))
    } else if lookahead.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        Ok(Value::Str(lit.value(), lit.span()))
    } else if lookahead.peek(Ident::peek_any) {
        let word = input.call(Ident::parse_any)?;
        Ok(Value::Word(word.to_string(), word.span()))
    } else {
        Err(lookahead.error())
    }
}
